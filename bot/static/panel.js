// Optional: the editor's "试一试" box updates in place. Without this script the button submits
// the form and the page comes back with the result, so everything works with JavaScript off.
(function () {
  "use strict";
  var form = document.getElementById("editor");
  var box = document.getElementById("preview");
  if (!form || !box || !window.fetch || !window.FormData) { return; }
  var tryButton = form.querySelector('button[name="action"][value="try"]');
  form.addEventListener("submit", function (event) {
    if (event.submitter !== tryButton) { return; }
    event.preventDefault();
    var data = new FormData(form);
    data.set("action", "try");
    // getAttribute: the buttons are named "action", which shadows form.action
    fetch(form.getAttribute("action"), { method: "POST", body: data, credentials: "same-origin",
                         headers: { "X-Requested-With": "fetch" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) { box.innerHTML = html; })  // server-rendered and escaped
      .catch(function () {  // fall back to the plain form post
        var hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "action"; hidden.value = "try";
        form.appendChild(hidden);
        form.submit();
      });
  });
})();
