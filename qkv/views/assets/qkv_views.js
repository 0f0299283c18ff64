/* qkv attention views: head, model, neuron and step views of one attention document.
 *
 * Rendered by qkv.views.html (static pages, notebooks) and by `qkv serve` (live explorer), from
 * the JSON document described in qkv/views/contract.py (packed by qkv/views/pack.py when long).
 * Every token (and label name) is written with textContent, never as HTML. No network access,
 * no dependencies. A document with a "prediction" shows it in a panel beside the attention (below
 * it in a narrow box): a classifier's labels or a language model's next tokens, ranked by
 * probability, or a translation's text. Wide tables and heatmaps scroll inside their own box.
 *
 * API: qkvViews.mount(id) renders the view whose data sits in <script id="{id}-data">;
 *      qkvViews.render(container, doc, options) renders doc into a container element;
 *      qkvView(id) (or qkvView() for the last one) returns the instance: .state, .doc,
 *      .weights(name, head) (dense rows or null), .shownEdges() (what the head view draws).
 */
(function () {
  "use strict";
  var VERSION = 2;         // 2: every prediction kind; a notebook holding another version swaps it
  if (window.qkvViews && window.qkvViews.version === VERSION) { return; }
  var SVG = "http://www.w3.org/2000/svg";
  var VIEWS = ["head", "model", "neuron", "step"];
  var TITLES = {head: "Head view", model: "Model view", neuron: "Neuron view", step: "Step view"};
  var HEAD_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                     "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
  var LONG = 150;          // tokens per side from which the head view prunes to top-k edges
  var TOP_LABELS = 10;     // labels (or next tokens) a prediction panel lists
  var api = {version: VERSION, instances: {}, last: null};
  window.qkvViews = api;
  window.qkvView = function (id) { return api.instances[id || api.last] || null; };

  // -- DOM helpers: text is always textContent ---------------------------------------------------
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function setAttrs(node, attrs) {
    if (!attrs) { return; }
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
  }
  function fmt(x, digits) {
    if (x === null || x === undefined) { return "—"; }
    if (x === -Infinity) { return "−∞"; }
    var d = digits === undefined ? 4 : digits;
    return (x < 0 ? "−" : "") + Math.abs(x).toFixed(d);
  }
  function short(token) { return token.length > 18 ? token.slice(0, 17) + "…" : token; }
  function shapeText(dims) { return "(" + dims.join(", ") + ")"; }

  // -- data access: dense or packed records ---------------------------------------------------------
  function decodeImage(b64) {
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }
  function Record(doc, r) {
    this.r = r;
    var q = doc.sides[r.query_side], k = doc.sides[r.key_side];
    var qp = r.query_positions || q.map(function (_, i) { return i; });
    var kp = r.key_positions || k.map(function (_, i) { return i; });
    function at(tokens, i) { return i >= 0 && i < tokens.length ? tokens[i] : "#" + i; }
    this.queryTokens = qp.map(function (i) { return at(q, i); });
    this.keyTokens = kp.map(function (i) { return at(k, i); });
    this.T = this.queryTokens.length;
    this.S = this.keyTokens.length;
    this.H = r.num_heads;
    this.packed = r.packed || null;
    this.detail = !!(r.query && r.key);
    this._images = {};
  }
  Record.prototype.dense = function (h) { return this.packed ? null : this.r.weights[h]; };
  // The edges of query t in head h: [[key, weight], ...], strongest first when pruned to k.
  Record.prototype.row = function (h, t, k) {
    var out = [], s;
    if (this.packed) {
      var idx = this.packed.indices[h][t], val = this.packed.values[h][t];
      for (s = 0; s < idx.length && (!k || s < k); s++) { out.push([idx[s], val[s]]); }
      return out;
    }
    var w = this.r.weights[h][t];
    for (s = 0; s < w.length; s++) { if (w[s] > 0) { out.push([s, w[s]]); } }
    if (k && out.length > k) {
      out.sort(function (a, b) { return b[1] - a[1]; });
      out = out.slice(0, k);
    }
    return out;
  };
  // A grid of intensities in [0, 1] for head h: {rows, cols, at(i, j)}.
  Record.prototype.image = function (h) {
    if (!this.packed) {
      var w = this.r.weights[h], max = 1e-12;
      w.forEach(function (row) { row.forEach(function (x) { if (x > max) { max = x; } }); });
      return {rows: this.T, cols: this.S, at: function (i, j) { return w[i][j] / max; }};
    }
    var im = this.packed.image;
    if (!this._images[h]) { this._images[h] = decodeImage(im.heads[h]); }
    var bytes = this._images[h];
    return {rows: im.rows, cols: im.cols, at: function (i, j) { return bytes[i * im.cols + j] / 255; }};
  };

  // -- an instance: one document in one container ------------------------------------------------
  function View(container, doc, options) {
    this.id = container.id;
    this.container = container;
    this.doc = doc;
    this.views = (options && options.views) || VIEWS;
    this.records = doc.attentions.map(function (r) { return new Record(doc, r); });
    var kinds = [];
    ["encoder", "decoder", "cross"].forEach(function (kind) {
      if (doc.attentions.some(function (r) { return r.kind === kind; })) { kinds.push(kind); }
    });
    this.kinds = kinds;
    var first = this.records[0];
    var long = Math.max(first.T, first.S) >= LONG;
    this.state = {view: this.views[0], kind: kinds[0], layer: this.layersOf(kinds[0])[0].r.layer,
                  head: long ? 0 : "all", query: 0, key: 0, topk: long ? 3 : 0};
    api.instances[this.id] = this;
    api.last = this.id;
    this.draw();
  }
  View.prototype.layersOf = function (kind) {
    return this.records.filter(function (x) { return x.r.kind === kind; })
      .sort(function (a, b) { return a.r.layer - b.r.layer; });
  };
  View.prototype.current = function () {
    var s = this.state;
    return this.layersOf(s.kind).filter(function (x) { return x.r.layer === s.layer; })[0];
  };
  View.prototype.set = function (changes) {
    var s = this.state;
    Object.keys(changes).forEach(function (k) { s[k] = changes[k]; });
    var layers = this.layersOf(s.kind);
    if (!layers.some(function (x) { return x.r.layer === s.layer; })) { s.layer = layers[0].r.layer; }
    var rec = this.current();
    if (s.head !== "all" && s.head >= rec.H) { s.head = 0; }
    if (s.query >= rec.T) { s.query = rec.T - 1; }
    if (s.key >= rec.S) { s.key = rec.S - 1; }
    this.draw();
  };
  View.prototype.weights = function (name, head) {
    var rec = this.records.filter(function (x) { return x.r.name === name; })[0];
    return rec ? rec.dense(head) : null;
  };
  View.prototype.shownEdges = function () {
    var lines = this.container.querySelectorAll(".qkv-edges line");
    return Array.prototype.map.call(lines, function (line) {
      return {head: +line.getAttribute("data-head"), query: +line.getAttribute("data-query"),
              key: +line.getAttribute("data-key"), weight: +line.getAttribute("data-weight")};
    });
  };

  View.prototype.draw = function () {
    var root = this.container;
    while (root.firstChild) { root.removeChild(root.firstChild); }
    root.classList.add("qkv-root");
    if (this.doc.title) { root.appendChild(el("div", {"class": "qkv-title"}, this.doc.title)); }
    var main = root, panel = this.doc.prediction ? predictionPanel(this.doc.prediction) : null;
    if (panel) {                     // the attention, the prediction beside (wrapped below)
      var layout = el("div", {"class": "qkv-layout"});
      main = el("div", {"class": "qkv-main"});
      layout.appendChild(main);
      layout.appendChild(panel);
      root.appendChild(layout);
    }
    main.appendChild(this.tabs());
    main.appendChild(this.controls());
    var body = el("div", {"class": "qkv-body qkv-" + this.state.view});
    main.appendChild(body);
    ({head: this.headView, model: this.modelView, neuron: this.neuronView,
      step: this.stepView})[this.state.view].call(this, body);
  };

  View.prototype.tabs = function () {
    var self = this, bar = el("div", {"class": "qkv-tabs", role: "tablist"});
    this.views.forEach(function (name) {
      var b = el("button", {"class": "qkv-tab", "data-view": name, type: "button", role: "tab",
                            "aria-selected": name === self.state.view}, TITLES[name]);
      b.addEventListener("click", function () { self.set({view: name}); });
      bar.appendChild(b);
    });
    return bar;
  };

  function select(cls, label, options, value, onchange) {
    var wrap = el("label", {"class": "qkv-control"}, null);
    wrap.appendChild(document.createTextNode(label + " "));
    var s = el("select", {"class": cls});
    options.forEach(function (o) {
      var opt = el("option", {value: o[0]}, o[1]);
      if (String(o[0]) === String(value)) { opt.selected = true; }
      s.appendChild(opt);
    });
    s.addEventListener("change", function () { onchange(s.value); });
    wrap.appendChild(s);
    return wrap;
  }

  View.prototype.controls = function () {
    var self = this, s = this.state, rec = this.current(), bar = el("div", {"class": "qkv-controls"});
    var kinds = el("span", {"class": "qkv-kinds", role: "radiogroup"});
    this.kinds.forEach(function (kind) {
      var b = el("button", {"class": "qkv-kind", "data-kind": kind, type: "button",
                            "aria-pressed": kind === s.kind}, kind);
      b.addEventListener("click", function () { self.set({kind: kind}); });
      kinds.appendChild(b);
    });
    bar.appendChild(kinds);
    if (s.view !== "model") {
      bar.appendChild(select("qkv-layer", "layer", this.layersOf(s.kind).map(function (x) {
        return [x.r.layer, String(x.r.layer)]; }), s.layer,
        function (v) { self.set({layer: +v}); }));
      var heads = [];
      if (s.view === "head") { heads.push(["all", "all"]); }
      for (var h = 0; h < rec.H; h++) { heads.push([h, String(h)]); }
      var head = s.view === "head" ? s.head : (s.head === "all" ? 0 : s.head);
      bar.appendChild(select("qkv-head-select", "head", heads, head, function (v) {
        self.set({head: v === "all" ? "all" : +v}); }));
    }
    if (s.view === "neuron" || s.view === "step") {
      bar.appendChild(select("qkv-query", "query", rec.queryTokens.map(function (t, i) {
        return [i, i + ": " + short(t)]; }), s.query, function (v) { self.set({query: +v}); }));
    }
    if (s.view === "neuron") {
      bar.appendChild(select("qkv-key", "key", rec.keyTokens.map(function (t, i) {
        return [i, i + ": " + short(t)]; }), s.key, function (v) { self.set({key: +v}); }));
    }
    if (s.view === "head") {
      var ks = [[0, "all"], [1, "1"], [3, "3"], [5, "5"], [10, "10"]];
      bar.appendChild(select("qkv-topk", "edges per query", ks, s.topk, function (v) {
        self.set({topk: +v}); }));
    }
    return bar;
  };

  // -- prediction: what the model made of the input, from the same forward pass ------------------
  // One panel for every kind of qkv/views/contract.py: "classification" and "next_token" rank
  // labels or tokens by probability; "translation" shows the target text. Unknown kinds: no panel.
  function predictionPanel(p) {
    var box = el("aside", {"class": "qkv-prediction", "data-kind": p.kind,
                           "aria-label": "prediction"});
    if (p.kind === "classification") {
      var labels = p.labels.map(function (label, i) {
        return {label: label, p: p.probabilities[i], i: i}; })
        .sort(function (a, b) { return b.p - a.p || a.i - b.i; });
      ranking(box, "Prediction", "label", labels, p.label, (labels.length > TOP_LABELS ? "The " +
        TOP_LABELS + " most probable of " + labels.length + " labels. " : "") +
        "Probabilities: softmax of the logits of the forward pass whose attention is shown.");
    } else if (p.kind === "next_token") {
      var tokens = p.tokens.map(function (token, i) {
        return {label: token, p: p.probabilities[i], i: p.ids ? p.ids[i] : i}; });
      var total = tokens.reduce(function (sum, row) { return sum + row.p; }, 0);
      ranking(box, "Next token", "token", tokens, tokens[0].label, "The " + tokens.length +
        " most probable tokens after the text (together p = " + fmt(total, 3) + "): softmax of " +
        "the logits at the last position, in the forward pass whose attention is shown.");
    } else if (p.kind === "translation") {
      box.appendChild(el("h4", null, "Translation"));
      box.appendChild(el("div", {"class": "qkv-translation"},
                         p.text || "(empty: the model ended at once)"));
      box.appendChild(el("p", {"class": "qkv-note"}, p.greedy === false ?
        "The target given, teacher-forced: the target side of the attention. Without a target " +
        "the model's own greedy translation is shown." :
        "The model's greedy output: the target side of the attention."));
    } else {
      return null;
    }
    return box;
  }
  // A ranked table: rows [{label, p, i}] most probable first, the first TOP_LABELS shown.
  function ranking(box, title, what, rows, best, note) {
    box.appendChild(el("h4", null, title));
    var head = el("div", {"class": "qkv-predicted"});
    head.appendChild(el("span", {"class": "qkv-predicted-label", title: best}, best));
    head.appendChild(el("span", {"class": "qkv-note"}, " p = " + fmt(rows[0].p)));
    box.appendChild(head);
    var table = el("table", {"class": "qkv-ranking"}), hr = el("tr");
    ["#", what, "probability", ""].forEach(function (x) { hr.appendChild(el("th", null, x)); });
    table.appendChild(hr);
    rows.slice(0, TOP_LABELS).forEach(function (row, rank) {
      var tr = el("tr", {"data-label": row.label, "data-probability": row.p, "data-index": row.i});
      if (row.label === best && rank === 0) { tr.classList.add("qkv-best"); }
      tr.appendChild(el("td", null, rank + 1));
      tr.appendChild(el("td", {"class": "qkv-label", title: row.label}, row.label));
      tr.appendChild(el("td", {"class": "qkv-probability"}, fmt(row.p)));
      var bar = el("td", {"class": "qkv-barcell"}), fill = el("span", {"class": "qkv-bar qkv-pos"});
      fill.style.width = Math.round(100 * Math.max(0, Math.min(1, row.p))) + "px";
      bar.appendChild(fill);
      tr.appendChild(bar);
      table.appendChild(tr);
    });
    box.appendChild(scrolling(table));
    box.appendChild(el("p", {"class": "qkv-note"}, note));
  }
  // `node` in a box of its own that scrolls when it is wider (or taller) than the page allows.
  function scrolling(node) {
    var box = el("div", {"class": "qkv-scroll"});
    box.appendChild(node);
    return box;
  }

  // -- head view: lines from each query token to the keys it attends to ----------------------------
  View.prototype.headView = function (body) {
    var self = this, s = this.state, rec = this.current();
    var heads = s.head === "all" ? range(rec.H) : [s.head];
    var rowH = 18, colW = 140, gap = 220, top = 24;
    var n = Math.max(rec.T, rec.S), width = 2 * colW + gap, height = top + n * rowH + 6;
    body.appendChild(el("p", {"class": "qkv-note"}, describe(rec) + (rec.packed || s.topk ?
      " Showing the " + (s.topk || rec.packed.top_k) + " strongest keys of each query." : "") +
      " Line opacity = weight. Hover a token to isolate its lines."));
    var legend = el("div", {"class": "qkv-legend"});
    heads.forEach(function (h) {
      var item = el("span", {"class": "qkv-legend-item"}, "head " + h);
      item.style.borderColor = HEAD_COLORS[h % HEAD_COLORS.length];
      legend.appendChild(item);
    });
    body.appendChild(legend);
    var scroll = el("div", {"class": "qkv-scroll"});
    var root = svg("svg", {width: width, height: height, "class": "qkv-head-svg",
                           viewBox: "0 0 " + width + " " + height});
    root.appendChild(svg("text", {x: colW - 6, y: 14, "text-anchor": "end", "class": "qkv-axis"},
                         "queries (" + rec.r.query_side + ")"));
    root.appendChild(svg("text", {x: colW + gap + 6, y: 14, "class": "qkv-axis"},
                         "keys (" + rec.r.key_side + ")"));
    var edges = svg("g", {"class": "qkv-edges"});
    root.appendChild(edges);
    heads.forEach(function (h) {
      var color = HEAD_COLORS[h % HEAD_COLORS.length];
      for (var t = 0; t < rec.T; t++) {
        rec.row(h, t, s.topk).forEach(function (edge) {
          var y1 = top + t * rowH + rowH / 2, y2 = top + edge[0] * rowH + rowH / 2;
          edges.appendChild(svg("line", {x1: colW, y1: y1, x2: colW + gap, y2: y2, stroke: color,
            "stroke-width": 2, "stroke-opacity": Math.max(0, Math.min(1, edge[1])),
            "data-head": h, "data-query": t, "data-key": edge[0], "data-weight": edge[1]}));
        });
      }
    });
    function tokens(list, x, anchor, side) {
      list.forEach(function (token, i) {
        var node = svg("text", {x: x, y: top + i * rowH + rowH / 2 + 4, "text-anchor": anchor,
                                "class": "qkv-token", "data-side": side, "data-index": i},
                       short(token));
        node.appendChild(svg("title", null, i + ": " + token));
        node.addEventListener("mouseenter", function () { isolate(edges, side, i); });
        node.addEventListener("mouseleave", function () { isolate(edges, null, null); });
        root.appendChild(node);
      });
    }
    tokens(rec.queryTokens, colW - 6, "end", "query");
    tokens(rec.keyTokens, colW + gap + 6, "start", "key");
    scroll.appendChild(root);
    body.appendChild(scroll);
    if (Math.max(rec.T, rec.S) >= LONG) {
      body.appendChild(el("p", {"class": "qkv-note"}, "Heatmap of head " + heads[0] +
                            " (rows = queries, columns = keys; hover for tokens)."));
      body.appendChild(heatmap(rec, heads[0], 512, true));
    }
  };
  function isolate(edges, side, index) {
    Array.prototype.forEach.call(edges.childNodes, function (line) {
      var on = side === null || +line.getAttribute("data-" + side) === index;
      line.style.display = on ? "" : "none";
    });
  }
  function range(n) { var a = []; for (var i = 0; i < n; i++) { a.push(i); } return a; }
  function describe(rec) {
    return rec.r.name + " — " + rec.r.kind + " attention, " + rec.H + " heads, " + rec.T +
      " queries × " + rec.S + " keys.";
  }

  // A canvas heatmap of head h, at most `size` px; hover shows the query and key tokens.
  function heatmap(rec, h, size, hover) {
    var im = rec.image(h), wrap = el("div", {"class": "qkv-heatmap"});
    var cell = Math.max(1, Math.floor(size / Math.max(im.rows, im.cols)));
    var canvas = el("canvas", {width: im.cols * cell, height: im.rows * cell,
                               "data-head": h, "data-name": rec.r.name});
    var ctx = canvas.getContext && canvas.getContext("2d");
    if (ctx) {
      for (var i = 0; i < im.rows; i++) {
        for (var j = 0; j < im.cols; j++) {
          var v = im.at(i, j);
          ctx.fillStyle = "rgb(" + Math.round(255 - 222 * v) + "," + Math.round(255 - 153 * v) +
            "," + Math.round(255 - 75 * v) + ")";
          ctx.fillRect(j * cell, i * cell, cell, cell);
        }
      }
    }
    wrap.appendChild(canvas);
    if (hover) {
      var tip = el("div", {"class": "qkv-tip"}, "\u00a0");
      canvas.addEventListener("mousemove", function (e) {
        var box = canvas.getBoundingClientRect();
        var i = Math.floor((e.clientY - box.top) / box.height * im.rows);
        var j = Math.floor((e.clientX - box.left) / box.width * im.cols);
        var t = Math.floor(i * rec.T / im.rows), s = Math.floor(j * rec.S / im.cols);
        var dense = rec.dense(h);
        tip.textContent = "query " + t + " " + JSON.stringify(rec.queryTokens[t] || "") +
          " → key " + s + " " + JSON.stringify(rec.keyTokens[s] || "") +
          (dense ? " : " + fmt(dense[t][s]) : "");
      });
      wrap.appendChild(tip);
    }
    return wrap;
  }

  // -- model view: every layer × head as a thumbnail, click to zoom --------------------------------
  View.prototype.modelView = function (body) {
    var self = this, s = this.state, layers = this.layersOf(s.kind);
    body.appendChild(el("p", {"class": "qkv-note"}, s.kind + " attention: rows are layers, " +
                          "columns are heads (rows = queries, columns = keys). Click to zoom."));
    var grid = el("table", {"class": "qkv-grid"});
    var H = Math.max.apply(null, layers.map(function (x) { return x.H; }));
    var head = el("tr");
    head.appendChild(el("th"));
    for (var h = 0; h < H; h++) { head.appendChild(el("th", null, "head " + h)); }
    grid.appendChild(head);
    layers.forEach(function (rec) {
      var tr = el("tr");
      tr.appendChild(el("th", null, "layer " + rec.r.layer));
      for (var h = 0; h < H; h++) {
        var td = el("td");
        if (h < rec.H) {
          var thumb = heatmap(rec, h, 96, false);
          thumb.classList.add("qkv-thumb");
          thumb.setAttribute("data-layer", rec.r.layer);
          thumb.setAttribute("data-head", h);
          var sel = s.zoom && s.zoom[0] === rec.r.layer && s.zoom[1] === h;
          if (sel) { thumb.classList.add("qkv-selected"); }
          (function (layer, head) {
            thumb.addEventListener("click", function () {
              self.set({layer: layer, head: head, zoom: [layer, head]}); });
          })(rec.r.layer, h);
          td.appendChild(thumb);
        }
        tr.appendChild(td);
      }
      grid.appendChild(tr);
    });
    body.appendChild(scrolling(grid));
    if (s.zoom) {
      var rec = this.current(), zh = s.zoom[1];
      var zoom = el("div", {"class": "qkv-zoom"});
      zoom.appendChild(el("h4", null, rec.r.name + " · head " + zh));
      zoom.appendChild(heatmap(rec, zh, 420, true));
      if (rec.dense(zh) && Math.max(rec.T, rec.S) <= 40) {
        zoom.appendChild(scrolling(matrix(rec, zh)));
      }
      body.appendChild(zoom);
    }
  };
  function matrix(rec, h) {
    var w = rec.dense(h), table = el("table", {"class": "qkv-matrix"}), tr = el("tr");
    tr.appendChild(el("th", null, "query \\ key"));
    rec.keyTokens.forEach(function (t) { tr.appendChild(el("th", null, short(t))); });
    table.appendChild(tr);
    rec.queryTokens.forEach(function (t, i) {
      var row = el("tr");
      row.appendChild(el("th", null, short(t)));
      w[i].forEach(function (x, j) {
        var td = el("td", {"data-query": i, "data-key": j, "data-weight": x}, fmt(x, 3));
        td.style.background = "rgba(31,102,180," + Math.min(1, x) * 0.8 + ")";
        row.appendChild(td);
      });
      table.appendChild(row);
    });
    return table;
  }

  // -- neuron view: q ⊙ k per dimension, summed to the score, then scaled ------------------------
  function dot(a, b) { var s = 0; for (var i = 0; i < a.length; i++) { s += a[i] * b[i]; } return s; }
  function needsDetail(body) {
    body.appendChild(el("p", {"class": "qkv-note qkv-missing"}, "This document holds weights " +
      "only: build it with detail=True (attention_document(..., detail=True)) to see the " +
      "query, key and value vectors."));
  }
  function maskAt(r, h, t, s) {
    if (!r.mask) { return null; }
    var m = Array.isArray(r.mask[0][0]) ? r.mask[h][t] : r.mask[t];
    return m[s];
  }
  View.prototype.neuronView = function (body) {
    var s = this.state, rec = this.current(), r = rec.r, h = s.head === "all" ? 0 : s.head;
    if (!rec.detail) { return needsDetail(body); }
    var q = r.query[h][s.query], k = r.key[h][s.key], D = q.length;
    var products = q.map(function (x, i) { return x * k[i]; });
    var score = products.reduce(function (a, b) { return a + b; }, 0);
    var scale = r.scale || 1 / Math.sqrt(D);
    body.appendChild(el("p", {"class": "qkv-note"}, "Query " + s.query + " " +
      JSON.stringify(rec.queryTokens[s.query]) + " · key " + s.key + " " +
      JSON.stringify(rec.keyTokens[s.key]) + ", head " + h + ": score = Σ_d q[d]·k[d] over D = " +
      D + " dimensions, then × 1/√d_k."));
    var max = Math.max.apply(null, products.map(Math.abs).concat([1e-12]));
    var table = el("table", {"class": "qkv-neuron"});
    var hr = el("tr");
    ["d", "q[d]", "k[d]", "q[d]·k[d]", ""].forEach(function (x) { hr.appendChild(el("th", null, x)); });
    table.appendChild(hr);
    products.forEach(function (p, d) {
      var tr = el("tr", {"data-dim": d, "data-product": p});
      tr.appendChild(el("td", null, d));
      tr.appendChild(el("td", null, fmt(q[d])));
      tr.appendChild(el("td", null, fmt(k[d])));
      tr.appendChild(el("td", null, fmt(p)));
      var bar = el("td", {"class": "qkv-barcell"}), fill = el("span", {"class": "qkv-bar " +
        (p < 0 ? "qkv-neg" : "qkv-pos")});
      fill.style.width = Math.round(80 * Math.abs(p) / max) + "px";
      bar.appendChild(fill);
      tr.appendChild(bar);
      table.appendChild(tr);
    });
    body.appendChild(scrolling(table));
    var sums = el("table", {"class": "qkv-sum"});
    function line(label, value, extra) {
      var tr = el("tr");
      tr.appendChild(el("th", null, label));
      tr.appendChild(el("td", {"data-value": value}, fmt(value)));
      tr.appendChild(el("td", {"class": "qkv-note"}, extra || ""));
      sums.appendChild(tr);
    }
    line("score q·k = Σ", score, r.scores && r.scores[h][s.query][s.key] !== null ?
      "recorded score: " + fmt(r.scores[h][s.query][s.key]) : "");
    line("× 1/√d_k = × " + fmt(scale), score * scale, "scaled score");
    var m = maskAt(r, h, s.query, s.key);
    var dense = rec.dense(h);
    if (dense) { line("weight after softmax", dense[s.query][s.key], m === 0 ? "masked" : ""); }
    body.appendChild(scrolling(sums));
  };

  // -- step view: one query's walk through softmax(q Kᵀ/√d_k) V ------------------------------------
  View.prototype.stepView = function (body) {
    var s = this.state, rec = this.current(), r = rec.r, h = s.head === "all" ? 0 : s.head;
    if (!rec.detail) { return needsDetail(body); }
    var t = s.query, q = r.query[h][t], D = q.length, K = r.key[h], V = r.value[h];
    var scale = r.scale || 1 / Math.sqrt(D), keys = range(rec.S);
    var dense = rec.dense(h), limited = false;
    if (!dense) {
      keys = rec.row(h, t, 0).map(function (e) { return e[0]; }).sort(function (a, b) { return a - b; });
      limited = true;
    }
    var scores = keys.map(function (j) { return dot(q, K[j]); });
    var scaled = scores.map(function (x) { return x * scale; });
    var mask = keys.map(function (j) { var m = maskAt(r, h, t, j); return m === null ? 1 : m; });
    var masked = scaled.map(function (x, i) { return mask[i] ? x : -Infinity; });
    var max = Math.max.apply(null, masked), exps = masked.map(function (x) { return Math.exp(x - max); });
    var total = exps.reduce(function (a, b) { return a + b; }, 0);
    var soft = exps.map(function (x) { return x / total; });
    function step(n, text) { body.appendChild(el("h4", {"class": "qkv-step"}, n + ". " + text)); }
    body.appendChild(el("p", {"class": "qkv-note"}, describe(rec) + " Head " + h + ", query " + t +
      " " + JSON.stringify(rec.queryTokens[t]) + "." + (limited ? " Long input: the " + keys.length +
      " strongest keys are shown; the softmax below is over them only, the recorded weights over all " +
      rec.S + "." : "")));
    step(1, "the query vector q = x W^Q, shape " + shapeText([D]));
    body.appendChild(vector(q, "qkv-q"));
    step(2, "dot product with each key, q·k_j; K has shape " + shapeText([rec.S, D]) +
      ", then ÷ √d_k = ÷ " + fmt(Math.sqrt(D)) + ", the mask, and the softmax");
    var table = el("table", {"class": "qkv-steps"}), hr = el("tr");
    ["j", "key", "q·k_j", "÷√d_k", "mask", "masked", "softmax", "recorded weight"]
      .forEach(function (x) { hr.appendChild(el("th", null, x)); });
    table.appendChild(hr);
    keys.forEach(function (j, i) {
      var recorded = dense ? dense[t][j] : rec.row(h, t, 0).filter(function (e) { return e[0] === j; })[0][1];
      var tr = el("tr", {"data-key": j, "data-weight": recorded, "data-score": scores[i]});
      [j, short(rec.keyTokens[j]), fmt(scores[i]), fmt(scaled[i]), mask[i], fmt(masked[i]),
       fmt(soft[i]), fmt(recorded)].forEach(function (x) { tr.appendChild(el("td", null, x)); });
      table.appendChild(tr);
    });
    body.appendChild(scrolling(table));
    step(3, "the output, Σ_j weight_j · v_j; V has shape " + shapeText([rec.S, V[0].length]) +
      ", the output shape " + shapeText([V[0].length]));
    var out = V[0].map(function () { return 0; });
    var sum = el("table", {"class": "qkv-steps"});
    keys.forEach(function (j, i) {
      var w = dense ? dense[t][j] : soft[i];
      if (w === 0) { return; }
      var tr = el("tr");
      tr.appendChild(el("th", null, fmt(w) + " × v_" + j));
      V[j].forEach(function (x, d) { out[d] += w * x; tr.appendChild(el("td", null, fmt(w * x))); });
      sum.appendChild(tr);
    });
    var total_row = el("tr", {"class": "qkv-total"});
    total_row.appendChild(el("th", null, "= output"));
    out.forEach(function (x) { total_row.appendChild(el("td", null, fmt(x))); });
    sum.appendChild(total_row);
    if (r.head_outputs) {
      var rec_row = el("tr");
      rec_row.appendChild(el("th", null, "recorded"));
      r.head_outputs[h][t].forEach(function (x) { rec_row.appendChild(el("td", null, fmt(x))); });
      sum.appendChild(rec_row);
    }
    body.appendChild(scrolling(sum));
  };
  function vector(v, cls) {
    var table = el("table", {"class": "qkv-vector " + cls}), tr = el("tr");
    v.forEach(function (x) { tr.appendChild(el("td", null, fmt(x))); });
    table.appendChild(tr);
    return scrolling(table);
  }

  // -- entry points ------------------------------------------------------------------------------------
  api.render = function (container, doc, options) { return new View(container, doc, options); };
  api.mount = function (id) {
    var container = document.getElementById(id);
    var data = document.getElementById(id + "-data");
    var views = (container.getAttribute("data-views") || VIEWS.join(" ")).split(" ");
    return api.render(container, JSON.parse(data.textContent), {views: views});
  };
})();
