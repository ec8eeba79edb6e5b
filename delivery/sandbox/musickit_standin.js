/* The sandbox's stand-in for Apple's MusicKit JS: only what the project uses.
 *
 *   await MusicKit.configure({developerToken, app: {name, build}})  -> the instance
 *   MusicKit.getInstance().authorize()  -> a Promise of the Music-User-Token (rejects when the fan cancels)
 *   document's "musickitloaded" event once the script has run
 *
 * Where Apple opens its sign-in window, the stand-in shows a consent step in the page: who signs in (a name:
 * a new sandbox user is made for a new name) and Allow / Don't Allow. Stable hooks for browser tests:
 * #musickit-sandbox-user, #musickit-sandbox-allow, #musickit-sandbox-deny. Styles are set through the CSSOM,
 * so pages with a strict Content-Security-Policy (no inline styles) show it too.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  var authorizeUrl = new URL("musickit/authorize", script.src).href;
  var instance = null;

  function element(tag, text, styles) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;
    Object.keys(styles || {}).forEach(function (name) { node.style[name] = styles[name]; });
    return node;
  }

  function consentStep(appName) {
    return new Promise(function (resolve) {
      var overlay = element("div", "", {
        position: "fixed", inset: "0", background: "rgba(0,0,0,.6)", display: "flex",
        alignItems: "center", justifyContent: "center", zIndex: "2147483647",
      });
      var box = element("div", "", {
        background: "#fff", color: "#111", padding: "1.5rem", borderRadius: "12px", maxWidth: "22rem",
        font: "16px/1.5 system-ui, sans-serif",
      });
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-label", "Apple Music (sandbox)");
      box.appendChild(element("h2", "Apple Music (sandbox)", { marginTop: "0", fontSize: "1.2rem" }));
      box.appendChild(element("p", "“" + appName + "” would like to access Apple Music and your media library."));
      var label = element("label", "Sign in as", { display: "block" });
      label.htmlFor = "musickit-sandbox-user";
      var input = element("input", "", { width: "100%", padding: ".4rem", boxSizing: "border-box" });
      input.id = "musickit-sandbox-user";
      input.value = "alice";
      var allow = element("button", "Allow", { marginTop: "1rem", marginRight: ".5rem" });
      allow.id = "musickit-sandbox-allow";
      allow.type = "button";
      var deny = element("button", "Don't Allow", { marginTop: "1rem" });
      deny.id = "musickit-sandbox-deny";
      deny.type = "button";
      box.append(label, input, allow, deny);
      overlay.appendChild(box);
      document.body.appendChild(overlay);
      input.focus();
      allow.addEventListener("click", function () { overlay.remove(); resolve(input.value); });
      deny.addEventListener("click", function () { overlay.remove(); resolve(null); });
    });
  }

  function Instance(config) {
    this.developerToken = config.developerToken;
    this.app = config.app || {};
    this.musicUserToken = "";
    this.isAuthorized = false;
  }

  Instance.prototype.authorize = function () {
    var self = this;
    return consentStep(self.app.name || "This app").then(function (user) {
      if (user === null) {
        throw new Error("AUTHORIZATION_ERROR: Unauthorized");
      }
      // text/plain keeps it a simple cross-origin request (no preflight).
      return fetch(authorizeUrl, {
        method: "POST",
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ developerToken: self.developerToken, user: user }),
      }).then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error((body.errors && body.errors[0].detail) || "Sign-in failed");
          self.musicUserToken = body.musicUserToken;
          self.isAuthorized = true;
          return self.musicUserToken;
        });
      });
    });
  };

  Instance.prototype.unauthorize = function () {
    this.musicUserToken = "";
    this.isAuthorized = false;
    return Promise.resolve();
  };

  window.MusicKit = {
    version: "sandbox",
    configure: function (config) {
      instance = new Instance(config || {});
      return Promise.resolve(instance);
    },
    getInstance: function () { return instance; },
  };
  document.dispatchEvent(new Event("musickitloaded"));
})();
