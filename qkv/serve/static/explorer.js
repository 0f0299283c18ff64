/* The live explorer (qkv serve): a sentence in; its attention and the model's prediction out;
 * in the Explain tab, which tokens made the model decide, and what ablating heads changes.
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
 *
 * Explain tab: the methods come from api/explain/methods (checkboxes), the target choices from
 * the document shown (a classifier's labels from api/info; a language model's positions; a
 * translation's output tokens; an encoder's reference text). api/explain answers with the
 * attributions and an HTML fragment drawn by qkv's Python views, shown in a sandboxed iframe
 * (srcdoc; no script runs in it). #qkv-explain carries data-ready="1" once the latest
 * explanation is drawn. The head grid toggles heads to ablate: every request then carries
 * ablate=NAME:HEAD,… and the prediction (and the explanation shown) follow.
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
  var shown = null;                    // {sentence, doc}: what the attention tab shows
  var ablated = [];                    // ["NAME:HEAD", ...] in the order they were clicked

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
  function withAblation(params) {
    if (!ablated.length) { return params; }
    return params + "&" + new URLSearchParams({ablate: ablated.join(",")});
  }

  function getJSON(url) {
    return fetch(url).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    });
  }

  function explore(sentence) {
    var request = ++latest;
    container.removeAttribute("data-ready");
    container.setAttribute("aria-busy", "true");
    show("tracing…", false);
    function done() { if (request === latest) { container.removeAttribute("aria-busy"); } }
    return getJSON("api/attention?" + withAblation(query(sentence))).then(function (result) {
      if (request !== latest) { return; }
      done();
      if (!result.ok) { show(result.body.error || JSON.stringify(result.body), true); return; }
      show("", false);
      shown = {sentence: sentence, doc: result.body};
      window.qkvViews.render(container, result.body, {views: config.views});
      container.setAttribute("data-ready", "1");
      explain.documentChanged();
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

  // -- tabs: the attention views, or the Explain tab ---------------------------------------------
  var section = document.getElementById("qkv-explain");
  function selectTab(name) {
    var tabs = document.querySelectorAll("#qkv-tabs .qkv-page-tab");
    Array.prototype.forEach.call(tabs, function (b) {
      b.setAttribute("aria-selected", String(b.getAttribute("data-tab") === name));
    });
    container.hidden = name !== "attention";
    section.hidden = name !== "explain";
    if (name === "explain") { explain.opened(); }
  }
  Array.prototype.forEach.call(document.querySelectorAll("#qkv-tabs .qkv-page-tab"), function (b) {
    b.addEventListener("click", function () { selectTab(b.getAttribute("data-tab")); });
  });

  // -- ablation: heads toggled in the Explain tab's grid, sent with every request ----------------
  var ablatedBox = document.getElementById("qkv-ablated");
  function setAblated(list) {
    ablated = list;
    ablatedBox.hidden = !list.length;
    document.getElementById("qkv-ablated-list").textContent = list.join(", ");
    if (shown) { explore(shown.sentence); }
  }
  document.getElementById("qkv-ablated-clear").addEventListener("click", function () {
    setAblated([]);
  });

  // -- the Explain tab --------------------------------------------------------------------------
  var explain = (function () {
    var box = section;
    var methodsBox = document.getElementById("qkv-methods");
    var targetSelect = document.getElementById("qkv-explain-target");
    var tokenField = document.getElementById("qkv-explain-token-field");
    var tokenInput = document.getElementById("qkv-explain-token");
    var referenceField = document.getElementById("qkv-explain-reference-field");
    var referenceInput = document.getElementById("qkv-explain-reference");
    var targetField = document.getElementById("qkv-explain-target-field");
    var explainStatus = document.getElementById("qkv-explain-status");
    var frame = document.getElementById("qkv-explain-frame");
    var prediction = document.getElementById("qkv-explain-prediction");
    var heads = document.getElementById("qkv-heads");
    var labels = null, loaded = false, latestExplain = 0, explained = false;

    if (config.task === "encoder") { targetField.hidden = true; referenceField.hidden = false; }
    if (config.task === "language_model" || config.task === "translation") {
      tokenField.hidden = false;
    }

    function say(message, error) {
      explainStatus.textContent = message;
      explainStatus.className = error ? "qkv-error" : "";
    }

    // The registered methods as checkboxes (the first attribution method checked).
    function loadMethods() {
      getJSON("api/explain/methods").then(function (result) {
        if (!result.ok) { say(result.body.error || "no methods", true); return; }
        var slow = result.body.slow || [];
        [["attribution", "attribution"], ["analysis", "analysis"]].forEach(function (group) {
          var names = result.body[group[0]] || [];
          if (!names.length) { return; }
          var row = document.createElement("div");
          row.className = "qkv-method-group";
          row.appendChild(document.createTextNode(group[1] + ": "));
          names.forEach(function (name, i) {
            var label = document.createElement("label");
            label.className = "qkv-method";
            var box = document.createElement("input");
            box.type = "checkbox";
            box.value = name;
            box.name = "method";
            box.checked = group[0] === "attribution" && i === 0;
            label.appendChild(box);
            label.appendChild(document.createTextNode(" " + name +
              (slow.indexOf(name) >= 0 ? " (slow)" : "")));
            row.appendChild(label);
          });
          methodsBox.appendChild(row);
        });
        box.setAttribute("data-methods", "1");
      });
      if (config.task === "classification") {
        getJSON("api/info").then(function (result) {
          if (result.ok) { labels = result.body.labels || []; fillTargets(); }
        });
      }
    }

    function option(value, words) {
      var o = document.createElement("option");
      o.value = String(value);
      o.textContent = words;
      return o;
    }
    // The target choices of the document shown; a choice still offered stays selected.
    function fillTargets() {
      var before = targetSelect.value;
      while (targetSelect.firstChild) { targetSelect.removeChild(targetSelect.firstChild); }
      var doc = shown && shown.doc;
      if (config.task === "classification") {
        targetSelect.appendChild(option("", "the predicted label"));
        (labels || []).forEach(function (label, i) {
          targetSelect.appendChild(option(i, "label " + i + ": " + label));
        });
      } else if (config.task === "language_model" && doc) {
        var tokens = doc.sides.text;
        tokens.forEach(function (token, i) {
          var next = i + 1 < tokens.length ? "'" + tokens[i + 1] + "'" : "the predicted token";
          targetSelect.appendChild(option(i, i + ": after '" + token + "' → " + next));
        });
        before = before === "" || +before >= tokens.length ? String(tokens.length - 1) : before;
      } else if (config.task === "translation" && doc) {
        var output = doc.sides.target.slice(1);
        output.forEach(function (token, i) {
          targetSelect.appendChild(option(i, "output " + i + ": '" + token + "'"));
        });
        targetSelect.appendChild(option(output.length, "output " + output.length +
                                        ": the token after them (predicted)"));
      }
      var values = Array.prototype.map.call(targetSelect.options, function (o) { return o.value; });
      if (values.indexOf(before) >= 0) { targetSelect.value = before; }
    }

    function chosenMethods() {
      return Array.prototype.filter.call(methodsBox.querySelectorAll("input[name=method]"),
        function (b) { return b.checked; }).map(function (b) { return b.value; });
    }

    function request() {
      var methods = chosenMethods();
      if (!shown) { say("no sentence yet: type one above", true); return; }
      if (!methods.length) { say("pick at least one method", true); return; }
      var params = new URLSearchParams({text: shown.sentence.text, method: methods.join(",")});
      if (config.task === "translation" && shown.sentence.target) {
        params.set("target_text", shown.sentence.target);
      }
      if (config.task === "encoder") { params.set("reference", referenceInput.value); }
      else if (targetSelect.value !== "") { params.set("target", targetSelect.value); }
      if (!tokenField.hidden && tokenInput.value) { params.set("token", tokenInput.value); }
      if (document.getElementById("qkv-explain-faithfulness").checked) {
        params.set("faithfulness", "1");
      }
      var id = ++latestExplain;
      box.removeAttribute("data-ready");
      box.setAttribute("aria-busy", "true");
      say("explaining (" + methods.join(", ") + ")…", false);
      getJSON("api/explain?" + withAblation(params.toString())).then(function (result) {
        if (id !== latestExplain) { return; }
        box.removeAttribute("aria-busy");
        if (!result.ok) { say(result.body.error || JSON.stringify(result.body), true); return; }
        var seconds = result.body.seconds || {};
        say("explained " + result.body.target + " (" + Object.keys(seconds).map(function (m) {
          return m + " " + (seconds[m] < 1 ? Math.round(1000 * seconds[m]) + " ms" :
                            seconds[m].toFixed(1) + " s"); }).join(", ") + ")", false);
        box.lastAnswer = result.body;
        draw(result.body.html);
        explained = true;
      }).catch(function (error) {
        if (id !== latestExplain) { return; }
        box.removeAttribute("aria-busy");
        say(String(error), true);
      });
    }

    // The fragment of qkv's views, in a sandboxed frame sized to what it holds.
    function draw(fragment) {
      frame.onload = function () {
        var inner = frame.contentDocument;
        if (inner && inner.documentElement) {
          frame.style.height = (inner.documentElement.scrollHeight + 4) + "px";
        }
        box.setAttribute("data-ready", "1");
      };
      frame.setAttribute("srcdoc", "<!DOCTYPE html><html><head><meta charset=\"utf-8\">" +
        "<style>body { margin: 0; font: 14px system-ui, sans-serif; }<\/style></head><body>" +
        fragment + "</body></html>");
    }

    // What the model predicts now (ablated heads included), in one line.
    function summary(doc) {
      var p = doc.prediction, words = "";
      if (!p) { return "an encoder: no prediction of its own (the explanation's target is the " +
                       "similarity to the reference)"; }
      if (p.kind === "classification") {
        var best = p.probabilities.indexOf(Math.max.apply(null, p.probabilities));
        words = "prediction: " + p.label + " (p = " + p.probabilities[best].toFixed(4) + ")";
      } else if (p.kind === "next_token") {
        words = "next token after the text: '" + p.tokens[0] + "' (p = " +
          p.probabilities[0].toFixed(4) + ")";
      } else if (p.kind === "translation") {
        words = "translation: " + (p.text || "(empty)");
      }
      return words + (ablated.length ? " — with " + ablated.length + " head(s) ablated" : "");
    }

    // The layers × heads grid of each attention kind: a button per head, pressed = ablated.
    function drawHeads(doc) {
      while (heads.firstChild) { heads.removeChild(heads.firstChild); }
      ["encoder", "decoder", "cross"].forEach(function (kind) {
        var records = doc.attentions.filter(function (r) { return r.kind === kind; })
          .sort(function (a, b) { return a.layer - b.layer; });
        if (!records.length) { return; }
        var table = document.createElement("table");
        table.className = "qkv-heads-grid";
        table.setAttribute("data-kind", kind);
        var caption = document.createElement("caption");
        caption.textContent = kind + " attention";
        table.appendChild(caption);
        records.forEach(function (r) {
          var tr = document.createElement("tr"), th = document.createElement("th");
          th.textContent = "layer " + r.layer;
          tr.appendChild(th);
          for (var h = 0; h < r.num_heads; h++) {
            var td = document.createElement("td"), b = document.createElement("button");
            var key = r.name + ":" + h;
            b.type = "button";
            b.className = "qkv-head-toggle";
            b.textContent = "head " + h;
            b.title = r.name + ", head " + h;
            b.setAttribute("data-name", r.name);
            b.setAttribute("data-head", String(h));
            b.setAttribute("aria-pressed", String(ablated.indexOf(key) >= 0));
            b.addEventListener("click", toggle.bind(null, key));
            td.appendChild(b);
            tr.appendChild(td);
          }
          table.appendChild(tr);
        });
        heads.appendChild(table);
      });
    }
    function toggle(key) {
      var list = ablated.slice(), at = list.indexOf(key);
      if (at >= 0) { list.splice(at, 1); } else { list.push(key); }
      setAblated(list);
    }

    document.getElementById("qkv-explain-form").addEventListener("submit", function (event) {
      event.preventDefault();
      request();
    });

    return {
      opened: function () { if (!loaded) { loaded = true; loadMethods(); } fillTargets(); },
      // A new answer of api/attention: new targets, heads, prediction; the explanation shown
      // is redone for it.
      documentChanged: function () {
        fillTargets();
        drawHeads(shown.doc);
        prediction.textContent = summary(shown.doc);
        box.setAttribute("data-doc", String(latest));
        if (explained) { request(); }
      }
    };
  })();

  // On load: the URL's sentence (a shared link), else the task's default.
  var params = new URLSearchParams(window.location.search);
  text.value = params.get("text") || config.default_text;
  if (config.task === "translation") { target.value = params.get("target") || ""; }
  explore(formSentence());
})();
