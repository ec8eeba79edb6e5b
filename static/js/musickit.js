/* Our Apple Music sign-in page (templates/fans/musickit.html, fans/musickit.py): configure MusicKit JS with the
 * developer token, call authorize() when the fan presses the button, post the Music-User-Token (or the refusal)
 * back with the page's CSRF token and session-bound state. */
(function () {
  "use strict";
  var panel = document.querySelector(".musickit");
  var form = document.getElementById("musickit-form");
  var button = document.getElementById("musickit-connect");
  var status = document.getElementById("musickit-status");
  var music = null;

  function say(text) { status.textContent = text; }

  // Hidden in the page itself: without JavaScript only its <noscript> notice shows, not a button that never works.
  button.hidden = false;
  status.hidden = false;

  function ready() {
    if (music || !window.MusicKit) return;
    Promise.resolve(window.MusicKit.configure({
      developerToken: panel.dataset.developerToken,
      app: { name: panel.dataset.appName, build: "1" },
    })).then(function (instance) {
      music = instance || window.MusicKit.getInstance();
      button.disabled = false;
      say("Press the button to sign in to Apple Music.");
    }, function () {
      say("Apple Music could not start. Please reload the page.");
    });
  }

  document.addEventListener("musickitloaded", ready);
  window.addEventListener("load", ready);

  button.addEventListener("click", function () {
    button.disabled = true;
    say("Waiting for Apple Music…");
    music.authorize().then(function (token) {
      if (!token) throw new Error("no token");
      form.elements.music_user_token.value = token;
      form.submit();
    }, function (error) {
      if (/AUTHORIZATION_ERROR|Unauthorized|denied|cancel/i.test(String(error && error.message))) {
        form.elements.error.value = "access_denied";
        form.submit();
        return;
      }
      button.disabled = false;
      say("Apple Music couldn't complete the sign-in. Please try again.");
    });
  });
})();
