/* The live explorer (qkv serve): a sentence in; its attention and the model's prediction out.
 *
 * Reads its config from <script type="application/json" id="qkv-config">
 * ({task, views, max_tokens, max_chars, default_text}). On load it traces the sentence of the
 * page's URL (?text=…&target=…, a shared link) or else the task's default sentence; on every
 * submit it traces the form's, and writes it into the URL with history.replaceState.
 * The document comes from api/attention and is drawn by qkv_views.js (window.qkvViews.render),
 * prediction panel included; messages and tokens are written with textContent only.
 *
 * #qkv-live carries data-ready="1" once the answer to the latest request is drawn (tests wait
 * for it) and aria-busy="true" while a request is on its way.
 */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("qkv-config").textContent);
  var form = document.getElementById("qkv-form");
  var text = document.getElementById("qkv-text");
  var target = document.getElementById("qkv-target");
  var status = document.getElementById("qkv-status");
  var container = document.getElementById("qkv-live");
  var latest = 0;                      // only the answer to the latest request is drawn

  if (config.task === "translation") { document.getElementById("qkv-target-field").hidden = false; }

  function show(message, error) {
    status.textContent = message;
    status.className = error ? "qkv-error" : "";
  }

  // The query string of a sentence: text, and target where there is one.
  function query(sentence) {
    var params = new URLSearchParams({text: sentence.text});
    if (sentence.target) { params.set("target", sentence.target); }
    return params.toString();
  }

  function explore(sentence) {
    var request = ++latest;
    container.removeAttribute("data-ready");
    container.setAttribute("aria-busy", "true");
    show("tracing…", false);
    function done() { if (request === latest) { container.removeAttribute("aria-busy"); } }
    fetch("api/attention?" + query(sentence)).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (result) {
      if (request !== latest) { return; }
      done();
      if (!result.ok) { show(result.body.error || JSON.stringify(result.body), true); return; }
      show("", false);
      window.qkvViews.render(container, result.body, {views: config.views});
      container.setAttribute("data-ready", "1");
    }).catch(function (error) {
      if (request !== latest) { return; }
      done();
      show(String(error), true);
    });
  }

  function formSentence() {
    return {text: text.value, target: config.task === "translation" ? target.value : ""};
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var sentence = formSentence();
    history.replaceState(null, "", "?" + query(sentence));
    explore(sentence);
  });

  // On load: the URL's sentence (a shared link), else the task's default.
  var params = new URLSearchParams(window.location.search);
  text.value = params.get("text") || config.default_text;
  if (config.task === "translation") { target.value = params.get("target") || ""; }
  explore(formSentence());
})();
