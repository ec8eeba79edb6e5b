// Keeps the server-rendered countdown ticking, and adds the release time in the visitor's own time zone (the campaign
// page, and the thank-you page, which has no countdown).
// Without JavaScript the page still shows the date and the countdown as it was when the page was made.
(function () {
  "use strict";

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function tick(countdown) {
    // The server's seconds until the release, not the release time against this device's clock: a phone whose
    // clock is wrong still counts right. The release time stays the fallback for a page without it.
    var left = parseInt(countdown.getAttribute("data-seconds-left"), 10);
    var target = isNaN(left) ? Date.parse(countdown.getAttribute("data-countdown")) : Date.now() + left * 1000;
    if (isNaN(target)) return;
    var values = {};
    countdown.querySelectorAll("[data-unit]").forEach(function (el) {
      values[el.getAttribute("data-unit")] = el;
    });

    function update() {
      // Rounded up, as the server does: zero is the release instant, when a reload gets the smart link.
      var ms = target - Date.now();
      var left = Math.max(0, Math.ceil(ms / 1000));
      var days = Math.floor(left / 86400);
      var hours = Math.floor((left % 86400) / 3600);
      var minutes = Math.floor((left % 3600) / 60);
      var seconds = left % 60;
      if (values.days) values.days.textContent = String(days);
      if (values.hours) values.hours.textContent = pad(hours);
      if (values.minutes) values.minutes.textContent = pad(minutes);
      if (values.seconds) values.seconds.textContent = pad(seconds);
      if (left > 0) {
        setTimeout(update, ms - (left - 1) * 1000); // the next whole second before the release, not a second late
      } else {
        var done = document.createElement("p");
        done.className = "countdown-done";
        done.setAttribute("role", "status");
        done.appendChild(document.createTextNode("It's out! "));
        var link = document.createElement("a");
        link.href = window.location.pathname;
        link.textContent = "Reload to listen";
        done.appendChild(link);
        countdown.replaceWith(done);
      }
    }

    update();
  }

  // The day and time, as the hint and the comparison with the page's own words read them; `zone` undefined
  // is the visitor's own time zone.
  function dayAndTime(when, zone) {
    var options = { weekday: "long", day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" };
    if (zone) options.timeZone = zone;
    return new Intl.DateTimeFormat(undefined, options).format(when);
  }

  function showLocalTime(el) {
    var when = new Date(el.getAttribute("data-local-time"));
    if (isNaN(when.getTime()) || !window.Intl) return;
    var local = dayAndTime(when);
    var shown = "";
    try {
      shown = dayAndTime(when, el.getAttribute("data-release-zone"));
    } catch (unknownZone) {
      // A zone this browser doesn't know (RangeError): tell the visitor's own time, which can't hurt.
    }
    if (local === shown) return; // the visitor's clock reads what the page already says (another zone's name)
    el.textContent = "That's " + local + " where you are.";
    el.hidden = false;
  }

  document.querySelectorAll("[data-countdown]").forEach(tick);
  document.querySelectorAll("[data-local-time]").forEach(showLocalTime);
})();
