// The campaign page is cached and shared by every visitor, so its forms carry no CSRF token. When one is sent,
// this fetches Django's token (and its cookie) from the form's data-token-url, adds it to the form and sends the
// form again, by the same button (its formaction names the service). Without JavaScript, or if the fetch fails,
// the form goes without a token and the server answers with the page again, holding one ("One more tap").
(function () {
  "use strict";

  function addToken(form, token) {
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "csrfmiddlewaretoken";
    input.value = token;
    form.appendChild(input);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var url = form.getAttribute && form.getAttribute("data-token-url");
    // A browser without `submitter` could not send the form by the button pressed: it goes as it is.
    if (!url || form.querySelector("input[name=csrfmiddlewaretoken]") || !window.fetch || !form.requestSubmit) return;
    if (event.submitter === undefined) return;
    event.preventDefault();
    if (form.getAttribute("data-token-pending")) return; // a second press while the token is on its way
    form.setAttribute("data-token-pending", "1");
    var submitter = event.submitter;
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (answer) {
        addToken(form, String(answer.token || ""));
      })
      .catch(function () {
        addToken(form, ""); // sent without: the server's page asks for one more tap
      })
      .then(function () {
        form.removeAttribute("data-token-pending");
        if (submitter) form.requestSubmit(submitter);
        else form.requestSubmit();
      });
  });
})();
