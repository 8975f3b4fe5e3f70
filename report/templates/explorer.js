'use strict';
// attnaudit's attention explorer (report/explorer.go describes the data).
// No network, no eval, no inline handlers: the page's Content-Security-Policy
// allows this script by its hash and nothing else.
(() => {
  const store = document.getElementById('explorer-data');
  if (!store) return;
  const palette = store.dataset.palette.split(',').map(h => [0, 2, 4].map(i => parseInt(h.slice(i, i + 2), 16)));
  const blobs = new Map();
  for (const el of store.children) blobs.set(el.dataset.id, el);
  const loaded = new Map(); // example id → Promise of its decoded data
  const font = '12px system-ui, "Noto Sans KR", "NanumGothic", "Apple SD Gothic Neo", "Malgun Gothic", sans-serif';
  const kindKeys = {cross: 'C', decoder_self: 'D', encoder_self: 'E'};

  function bytesOf(b64url) {
    const bin = atob(b64url.replace(/-/g, '+').replace(/_/g, '/'));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function decode(id) {
    const el = blobs.get(id);
    if (!el) throw new Error('no attention data for example ' + id);
    if (typeof DecompressionStream !== 'function') {
      throw new Error('this browser cannot decompress (DecompressionStream: Chrome 80, Firefox 113, Safari 16.4 or later)');
    }
    const z = new Blob([bytesOf(el.dataset.z)]).stream().pipeThrough(new DecompressionStream('deflate'));
    const buf = new Uint8Array(await new Response(z).arrayBuffer());
    const n = new DataView(buf.buffer).getUint32(0, true);
    const d = JSON.parse(new TextDecoder().decode(buf.subarray(4, 4 + n)));
    d.w = buf.subarray(4 + n);
    return d;
  }

  function data(id) {
    if (!loaded.has(id)) loaded.set(id, decode(id));
    return loaded.get(id);
  }

  // matrix returns a kind's weights at a layer, of one head or (head < 0)
  // the mean of all, rows × cols, row-major.
  function matrix(d, K, layer, head) {
    const R = K.rows, C = K.cols;
    const per = K.causal ? R * (R + 1) / 2 : R * C;
    const out = new Float32Array(R * C);
    const first = head < 0 ? 0 : head, last = head < 0 ? K.heads - 1 : head;
    for (let h = first; h <= last; h++) {
      let o = K.offset + (layer * K.heads + h) * per;
      for (let t = 0; t < R; t++) {
        const n = K.causal ? t + 1 : C;
        for (let j = 0; j < n; j++) out[t * C + j] += d.w[o++] / 255;
      }
    }
    const heads = last - first + 1;
    if (heads > 1) for (let i = 0; i < out.length; i++) out[i] /= heads;
    return out;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function colour(v, hi) {
    const c = palette[Math.max(0, Math.min(palette.length - 1, Math.round(v / hi * (palette.length - 1))))];
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }

  function sizeCanvas(cv, w, h) {
    const dpr = window.devicePixelRatio || 1;
    cv.width = Math.ceil(w * dpr);
    cv.height = Math.ceil(h * dpr);
    cv.style.width = w + 'px';
    cv.style.height = h + 'px';
    const ctx = cv.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = font;
    return ctx;
  }

  function textWidth(ctx, labels) {
    let w = 0;
    for (const l of labels) w = Math.max(w, ctx.measureText(l[0]).width);
    return w;
  }

  // Explorer is one example's explorer: its state, controls and drawing.
  class Explorer {
    constructor(root, d) {
      this.root = root;
      this.d = d;
      this.kind = 0;
      const want = parseInt(root.dataset.layer, 10);
      this.layer = this.resolve(Number.isNaN(want) ? -1 : want);
      this.head = -1;
      this.view = 'heat';
      this.build();
      this.draw();
    }

    get K() { return this.d.kinds[this.kind]; }

    resolve(layer) {
      const n = this.K.layers;
      return Math.max(0, Math.min(n - 1, layer < 0 ? layer + n : layer));
    }

    build() {
      const root = this.root;
      root.replaceChildren();
      this.bar = el('div', 'x-bar');
      this.groups = {};
      const group = (name, label) => {
        const g = el('span', 'x-group');
        g.setAttribute('role', 'group');
        g.setAttribute('aria-label', label);
        g.append(el('span', 'x-label', label));
        this.groups[name] = g;
        this.bar.append(g);
        return g;
      };
      const kinds = group('kind', 'Attention');
      this.d.kinds.forEach((K, i) => kinds.append(this.button('kind', i, K.title.replace(/ \(.*\)$/, ''), kindKeys[K.kind])));
      group('layer', 'Layer');
      group('head', 'Head');
      const views = group('view', 'View');
      views.append(this.button('view', 'heat', 'heatmap'), this.button('view', 'lines', 'lines'));
      this.stage = el('div', 'x-stage');
      this.canvas = el('canvas', 'x-canvas');
      this.overlay = el('canvas', 'x-overlay');
      this.tip = el('div', 'x-tip');
      this.tip.setAttribute('role', 'status');
      this.tip.hidden = true;
      this.stage.append(this.canvas, this.overlay, this.tip);
      this.caption = el('p', 'x-caption');
      root.append(this.bar, this.stage, this.caption);
      this.bar.addEventListener('click', e => {
        const b = e.target.closest('button');
        if (!b) return;
        this.set(b.dataset.set, b.dataset.v);
      });
      root.addEventListener('keydown', e => this.key(e));
      // Pointer events: a mouse hovers, a finger or pen taps.
      this.stage.addEventListener('pointermove', e => this.hover(e));
      this.stage.addEventListener('pointerdown', e => this.hover(e));
      this.stage.addEventListener('pointerleave', () => this.unhover());
    }

    button(set, v, text, key) {
      const b = el('button', 'x-btn', text);
      b.type = 'button';
      b.dataset.set = set;
      b.dataset.v = String(v);
      if (key) b.title = 'key ' + key;
      return b;
    }

    // controls rebuilds the layer and head buttons (kinds may differ in
    // layers and heads) and marks the pressed ones.
    controls() {
      const K = this.K;
      const fill = (name, values, text) => {
        const g = this.groups[name];
        const have = g.querySelectorAll('button').length;
        if (have !== values.length) {
          g.querySelectorAll('button').forEach(b => b.remove());
          values.forEach(v => g.append(this.button(name, v, text(v))));
        }
      };
      fill('layer', [...Array(K.layers).keys()], v => String(K.names ? K.names[v] : v));
      fill('head', [-1, ...Array(K.heads).keys()], v => v < 0 ? 'mean' : String(v));
      const now = {kind: String(this.kind), layer: String(this.layer), head: String(this.head), view: this.view};
      for (const b of this.bar.querySelectorAll('button')) {
        b.setAttribute('aria-pressed', String(now[b.dataset.set] === b.dataset.v));
      }
      this.root.dataset.state = `${K.kind} ${this.layer} ${this.head} ${this.view}`;
    }

    set(what, v) {
      if (what === 'view') this.view = v;
      else if (what === 'kind') {
        const from = this.layer - this.K.layers; // keep the depth from the end
        this.kind = Number(v);
        this.layer = this.resolve(from);
        if (this.head >= this.K.heads) this.head = -1;
      } else if (what === 'layer') this.layer = Number(v);
      else if (what === 'head') this.head = Number(v);
      this.draw();
    }

    key(e) {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      const K = this.K;
      const wrap = (v, lo, n) => lo + ((v - lo) % n + n) % n;
      switch (e.key) {
        case 'ArrowRight': this.head = wrap(this.head + 1, -1, K.heads + 1); break;
        case 'ArrowLeft': this.head = wrap(this.head - 1, -1, K.heads + 1); break;
        case 'ArrowDown': this.layer = wrap(this.layer + 1, 0, K.layers); break;
        case 'ArrowUp': this.layer = wrap(this.layer - 1, 0, K.layers); break;
        case 'm': case 'M': this.head = -1; break;
        case 'v': case 'V': this.view = this.view === 'heat' ? 'lines' : 'heat'; break;
        case 'k': case 'K': this.set('kind', String((this.kind + 1) % this.d.kinds.length)); e.preventDefault(); return;
        default: {
          const i = this.d.kinds.findIndex(x => kindKeys[x.kind] === e.key.toUpperCase());
          if (i < 0 || e.key.length !== 1) return;
          this.set('kind', String(i));
          e.preventDefault();
          return;
        }
      }
      e.preventDefault();
      this.draw();
    }

    tokens(which) { return this.d[which]; }

    draw() {
      this.controls();
      const K = this.K;
      this.m = matrix(this.d, K, this.layer, this.head);
      this.hi = 0;
      for (const v of this.m) this.hi = Math.max(this.hi, v);
      if (this.hi <= 0) this.hi = 1;
      this.lit = false;
      this.unhover();
      if (this.view === 'lines') this.drawLines(); else this.drawHeat();
      const heads = this.head < 0 ? `mean of ${K.heads} heads` : `head ${this.head}`;
      this.caption.textContent = `${K.title}, layer ${K.names ? K.names[this.layer] : this.layer}, ${heads}; colour scale 0 – ${this.hi.toFixed(3)}. ` +
        `Rows: ${K.qname} tokens; columns: ${K.kname} tokens. Keys: ←/→ head, ↑/↓ layer, M mean, K (or C, D, E) kind, V heatmap/lines.`;
    }

    drawHeat() {
      const K = this.K, qs = this.tokens(K.q), ks = this.tokens(K.k);
      const probe = this.canvas.getContext('2d');
      probe.font = font;
      const left = Math.min(180, Math.ceil(textWidth(probe, qs)) + 10);
      const top = Math.min(140, Math.ceil(textWidth(probe, ks)) + 10);
      const avail = Math.max(240, (this.root.clientWidth || 900) - left - 70);
      const cell = Math.max(4, Math.min(30, Math.floor(avail / K.cols), Math.floor(900 / K.rows)));
      const w = left + cell * K.cols + 60, h = top + cell * K.rows + 8;
      const ctx = sizeCanvas(this.canvas, w, h);
      sizeCanvas(this.overlay, w, h);
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, w, h);
      for (let t = 0; t < K.rows; t++) {
        for (let j = 0; j < K.cols; j++) {
          ctx.fillStyle = colour(this.m[t * K.cols + j], this.hi);
          ctx.fillRect(left + j * cell, top + t * cell, cell, cell);
        }
      }
      ctx.fillStyle = '#1d2127';
      const every = Math.ceil(13 / cell);
      ctx.textBaseline = 'middle';
      ctx.textAlign = 'right';
      for (let t = 0; t < K.rows; t += every) ctx.fillText(qs[t][0], left - 5, top + (t + 0.5) * cell, left - 8);
      ctx.save();
      ctx.textAlign = 'left';
      for (let j = 0; j < K.cols; j += every) {
        ctx.setTransform(1, 0, 0, 1, 0, 0);
        const dpr = window.devicePixelRatio || 1;
        ctx.setTransform(dpr, 0, 0, dpr, (left + (j + 0.5) * cell) * dpr, (top - 5) * dpr);
        ctx.rotate(-Math.PI / 2);
        ctx.fillText(ks[j][0], 0, 0, top - 8);
      }
      ctx.restore();
      // Colour bar.
      const bx = left + cell * K.cols + 14, bh = cell * K.rows;
      for (let y = 0; y < bh; y++) {
        ctx.fillStyle = colour(this.hi * (1 - y / Math.max(1, bh - 1)), this.hi);
        ctx.fillRect(bx, top + y, 10, 1);
      }
      ctx.fillStyle = '#1d2127';
      ctx.textAlign = 'left';
      ctx.fillText(this.hi.toFixed(2), bx + 13, top + 6);
      ctx.fillText('0', bx + 13, top + bh - 6);
      this.geo = {x0: left, y0: top, cell};
      this.canvas.dataset.grid = JSON.stringify(this.geo);
      delete this.canvas.dataset.lines;
    }

    drawLines() {
      const K = this.K, qs = this.tokens(K.q), ks = this.tokens(K.k);
      const probe = this.canvas.getContext('2d');
      probe.font = font;
      const lw = Math.min(180, Math.ceil(textWidth(probe, qs)) + 12);
      const rw = Math.min(180, Math.ceil(textWidth(probe, ks)) + 12) + 50; // room for a weight
      const gap = 220, step = 20, top = 24;
      const w = lw + gap + rw, h = top + step * Math.max(K.rows, K.cols) + 6;
      const ctx = sizeCanvas(this.canvas, w, h);
      sizeCanvas(this.overlay, w, h);
      this.geo = {xl: lw, xr: lw + gap, w, y0: top, step, lines: true};
      this.canvas.dataset.lines = JSON.stringify(this.geo);
      delete this.canvas.dataset.grid;
      this.paintLines(ctx, -1, -1);
    }

    // paintLines draws both token columns and the links, all of them or
    // only those of query row qt or key column kj.
    paintLines(ctx, qt, kj) {
      const K = this.K, qs = this.tokens(K.q), ks = this.tokens(K.k), g = this.geo;
      const w = g.w, h = g.y0 + g.step * Math.max(K.rows, K.cols) + 6;
      ctx.clearRect(0, 0, w, h);
      ctx.fillStyle = '#fff';
      ctx.fillRect(0, 0, w, h);
      ctx.fillStyle = '#5b6470';
      ctx.textBaseline = 'middle';
      ctx.textAlign = 'right';
      ctx.fillText(K.qname, g.xl - 6, 10);
      ctx.textAlign = 'left';
      ctx.fillText(K.kname, g.xr + 6, 10);
      const y = i => g.y0 + (i + 0.5) * g.step;
      const focus = qt >= 0 || kj >= 0;
      ctx.lineWidth = 2;
      for (let t = 0; t < K.rows; t++) {
        if (qt >= 0 && t !== qt) continue;
        for (let j = 0; j < K.cols; j++) {
          if (kj >= 0 && j !== kj) continue;
          const v = this.m[t * K.cols + j];
          if (v < 0.005) continue;
          ctx.strokeStyle = `rgba(11, 87, 208, ${Math.min(1, focus ? 0.15 + v : v).toFixed(3)})`;
          ctx.beginPath();
          ctx.moveTo(g.xl, y(t));
          ctx.lineTo(g.xr, y(j));
          ctx.stroke();
        }
      }
      const label = (text, x, yy, on, align) => {
        ctx.textAlign = align;
        if (on) {
          const tw = ctx.measureText(text).width;
          ctx.fillStyle = '#ffe08a';
          ctx.fillRect(align === 'right' ? x - tw - 2 : x - 2, yy - 9, tw + 4, 18);
        }
        ctx.fillStyle = '#1d2127';
        ctx.fillText(text, x, yy, 170);
      };
      for (let t = 0; t < K.rows; t++) label(qs[t][0], g.xl - 6, y(t), t === qt, 'right');
      for (let j = 0; j < K.cols; j++) {
        label(ks[j][0], g.xr + 6, y(j), j === kj, 'left');
        if (qt >= 0) {
          ctx.fillStyle = '#5b6470';
          ctx.textAlign = 'left';
          const tw = ctx.measureText(ks[j][0]).width;
          ctx.fillText(this.m[qt * K.cols + j].toFixed(3), g.xr + 14 + Math.min(170, tw), y(j));
        }
      }
    }

    // cellAt finds the hovered heatmap cell or lines token.
    at(e) {
      const r = this.canvas.getBoundingClientRect();
      const x = e.clientX - r.left, y = e.clientY - r.top, g = this.geo, K = this.K;
      if (!g) return null;
      if (g.lines) {
        const i = Math.floor((y - g.y0) / g.step);
        if (x < g.xl + 20 && i >= 0 && i < K.rows) return {side: 'q', i, x, y};
        if (x > g.xr - 20 && i >= 0 && i < K.cols) return {side: 'k', i, x, y};
        return null;
      }
      const j = Math.floor((x - g.x0) / g.cell), t = Math.floor((y - g.y0) / g.cell);
      if (j < 0 || t < 0 || j >= K.cols || t >= K.rows) return null;
      return {t, j, x, y};
    }

    hover(e) {
      const a = this.at(e), K = this.K;
      if (!a) { this.unhover(); return; }
      const qs = this.tokens(K.q), ks = this.tokens(K.k);
      const tip = this.tip;
      tip.replaceChildren();
      const line = (...parts) => { const p = el('div'); p.append(...parts); tip.append(p); };
      const ctx = this.overlay.getContext('2d');
      const dpr = window.devicePixelRatio || 1;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      if (this.geo.lines) {
        const ctxMain = this.canvas.getContext('2d');
        ctxMain.font = font;
        let best = 0;
        if (a.side === 'q') {
          for (let j = 1; j < K.cols; j++) if (this.m[a.i * K.cols + j] > this.m[a.i * K.cols + best]) best = j;
          this.paintLines(ctxMain, a.i, -1);
          line(el('span', 'x-n', K.qname + ' '), el('b', 'x-q', qs[a.i][0]), el('span', 'x-n', ` (${a.i}) attends most to ${K.kname} `),
            el('b', 'x-k', ks[best][0]), el('span', 'x-n', ` (${best}): `), el('b', 'x-w', this.m[a.i * K.cols + best].toFixed(3)));
          line(el('span', 'x-raw', qs[a.i][1]));
        } else {
          for (let t = 1; t < K.rows; t++) if (this.m[t * K.cols + a.i] > this.m[best * K.cols + a.i]) best = t;
          this.paintLines(ctxMain, -1, a.i);
          line(el('span', 'x-n', K.kname + ' '), el('b', 'x-k', ks[a.i][0]), el('span', 'x-n', ` (${a.i}) gets most from ${K.qname} `),
            el('b', 'x-q', qs[best][0]), el('span', 'x-n', ` (${best}): `), el('b', 'x-w', this.m[best * K.cols + a.i].toFixed(3)));
          line(el('span', 'x-raw', ks[a.i][1]));
        }
        this.lit = true;
      } else {
        const g = this.geo, w = this.m[a.t * K.cols + a.j];
        ctx.strokeStyle = '#ff3b30';
        ctx.lineWidth = 2;
        ctx.strokeRect(g.x0 + a.j * g.cell, g.y0 + a.t * g.cell, g.cell, g.cell);
        ctx.strokeStyle = 'rgba(255,59,48,0.35)';
        ctx.lineWidth = 1;
        ctx.strokeRect(g.x0, g.y0 + a.t * g.cell, K.cols * g.cell, g.cell);
        ctx.strokeRect(g.x0 + a.j * g.cell, g.y0, g.cell, K.rows * g.cell);
        line(el('span', 'x-n', K.qname + ' '), el('b', 'x-q', qs[a.t][0]), el('span', 'x-n', ` (row ${a.t}) → ${K.kname} `),
          el('b', 'x-k', ks[a.j][0]), el('span', 'x-n', ` (column ${a.j})`));
        line(el('span', 'x-n', 'weight '), el('b', 'x-w', w.toFixed(3)));
        line(el('span', 'x-raw', `${qs[a.t][1]} → ${ks[a.j][1]}`));
      }
      tip.hidden = false;
      tip.dataset.at = this.geo.lines ? a.side + a.i : a.t + ',' + a.j; // what it describes, for tests
      // In the lines view the tooltip sits right of the columns where there
      // is room, else in the gap between them, off the token labels.
      let x = a.x + 14, y = a.y + 16, room = this.stage.clientWidth;
      if (this.geo.lines) {
        room = this.root.clientWidth - this.stage.offsetLeft;
        x = this.geo.w + 8 + tip.offsetWidth < room ? this.geo.w + 8 : this.geo.xl + 24;
        y = a.y - 8;
      }
      tip.style.left = Math.max(0, Math.min(x, room - tip.offsetWidth - 4)) + 'px';
      tip.style.top = y + 'px';
    }

    unhover() {
      this.tip.hidden = true;
      const ctx = this.overlay.getContext('2d');
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
      if (this.lit) {
        this.lit = false;
        const ctxMain = this.canvas.getContext('2d');
        ctxMain.font = font;
        this.paintLines(ctxMain, -1, -1);
      }
    }
  }

  const explorers = [];
  function start(root) {
    root.classList.add('x-loading');
    data(root.dataset.ex).then(d => {
      root.classList.remove('x-loading');
      explorers.push(new Explorer(root, d));
    }).catch(err => {
      root.classList.remove('x-loading');
      root.replaceChildren(el('p', 'note', 'The attention explorer could not load: ' + err.message));
      console.error('attention explorer, example ' + root.dataset.ex + ':', err);
    });
  }

  const roots = document.querySelectorAll('.explorer[data-ex]');
  if ('IntersectionObserver' in window) {
    const io = new IntersectionObserver(entries => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        io.unobserve(e.target);
        start(e.target);
      }
    }, {rootMargin: '400px 0px'});
    roots.forEach(r => io.observe(r));
  } else {
    roots.forEach(start);
  }

  let resizing = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => explorers.forEach(x => x.draw()), 150);
  });
})();
