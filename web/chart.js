// chart.js - small SVG charts for the dashboard: line charts over steps,
// a histogram, and the interval bar of an evaluation difference.  Written
// here because the pages need three plain shapes, no interaction library.

const NS = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Round tick positions covering [lo, hi] (about n of them).
export function ticks(lo, hi, n = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

export function fmtNum(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(2);
  if (a >= 1000) return Math.round(v).toLocaleString('en');
  return String(Number(v.toPrecision(4)));
}

// A line chart.  series: [{name, cls, points: [[x, y], ...], dots}]; the
// chart is redrawn by update() as points arrive.  Each series is one
// <polyline data-series=name>, so a test can count its points.
export function lineChart(title, { xLabel = 'step' } = {}) {
  const W = 640, H = 260, L = 58, R = 12, T = 12, B = 34;
  const root = document.createElement('figure');
  root.className = 'chart';
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  const legend = document.createElement('div');
  legend.className = 'legend';
  root.append(cap, box, legend);

  function update(series) {
    box.replaceChildren();
    legend.replaceChildren();
    const all = series.flatMap(s => s.points).filter(p => Number.isFinite(p[1]));
    if (all.length === 0) {
      box.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' },
        'no data yet'));
      return;
    }
    let x0 = Math.min(...all.map(p => p[0])), x1 = Math.max(...all.map(p => p[0]));
    let y0 = Math.min(...all.map(p => p[1])), y1 = Math.max(...all.map(p => p[1]));
    if (x1 === x0) x1 = x0 + 1;
    const pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.1 || 1;
    y0 -= pad; y1 += pad;
    const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R);
    const sy = y => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
    for (const t of ticks(y0, y1, 5)) {
      box.append(svg('line', { x1: L, x2: W - R, y1: sy(t), y2: sy(t), class: 'grid' }));
      box.append(svg('text', { x: L - 6, y: sy(t) + 4, 'text-anchor': 'end' }, fmtNum(t)));
    }
    for (const t of ticks(x0, x1, 6).filter(t => Number.isInteger(t))) {
      box.append(svg('line', { x1: sx(t), x2: sx(t), y1: H - B, y2: H - B + 4, class: 'axis' }));
      box.append(svg('text', { x: sx(t), y: H - B + 16, 'text-anchor': 'middle' }, String(t)));
    }
    box.append(svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'axis' }));
    box.append(svg('text', { x: W - R, y: H - 4, 'text-anchor': 'end', class: 'label' }, xLabel));
    for (const s of series) {
      const pts = s.points.filter(p => Number.isFinite(p[1]));
      const line = svg('polyline', {
        class: 'series ' + s.cls, 'data-series': s.name,
        points: pts.map(p => sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1)).join(' '),
      });
      box.append(line);
      if (s.dots)
        for (const p of pts) {
          const c = svg('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 3, class: 'dot ' + s.cls });
          c.append(svg('title', {}, `${s.name} at step ${p[0]}: ${fmtNum(p[1])}`));
          box.append(c);
        }
      const key = document.createElement('span');
      key.className = 'key ' + s.cls;
      const last = pts.length ? pts[pts.length - 1][1] : NaN;
      key.textContent = `${s.name} (${pts.length} points, last ${fmtNum(last)})`;
      legend.append(key);
    }
  }
  return { el: root, update };
}

// Length histogram: buckets [{lo, hi, count}].
export function histogram(title, buckets, unit = 'bytes') {
  const W = 640, H = 220, L = 46, R = 10, T = 10, B = 46;
  const root = document.createElement('figure');
  root.className = 'chart';
  const cap = document.createElement('figcaption');
  cap.textContent = title;
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  root.append(cap, box);
  if (!buckets || buckets.length === 0) {
    box.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'empty'));
    return root;
  }
  const max = Math.max(...buckets.map(b => b.count), 1);
  const bw = (W - L - R) / buckets.length;
  for (const t of ticks(0, max, 4).filter(Number.isInteger)) {
    const y = T + (1 - t / max) * (H - T - B);
    box.append(svg('line', { x1: L, x2: W - R, y1: y, y2: y, class: 'grid' }));
    box.append(svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, String(t)));
  }
  buckets.forEach((b, i) => {
    const h = b.count / max * (H - T - B);
    const r = svg('rect', { x: L + i * bw + 1, y: H - B - h, width: Math.max(bw - 2, 1), height: h,
      class: 'bar' });
    r.append(svg('title', {}, `${b.lo}–${b.hi} ${unit}: ${b.count}`));
    box.append(r);
    if (buckets.length <= 12 || i % 2 === 0)
      box.append(svg('text', { x: L + (i + 0.5) * bw, y: H - B + 14, 'text-anchor': 'middle',
        class: 'small' }, String(b.lo)));
  });
  box.append(svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'label' },
    `record length (${unit}, bucket start)`));
  return root;
}

// An interval around zero: the difference with its confidence interval as
// a bar with whiskers, green when it is an improvement, red a regression,
// grey when the interval crosses zero.  scale: the largest |value| shown.
export function ciBar(diff, lo, hi, scale, higherIsBetter = true) {
  const W = 220, H = 26, M = 8;
  const s = scale > 0 ? scale : 1;
  const x = v => W / 2 + v / s * (W / 2 - M);
  const good = higherIsBetter ? lo > 0 : hi < 0;
  const bad = higherIsBetter ? hi < 0 : lo > 0;
  const cls = good ? 'better' : bad ? 'worse' : 'unsure';
  const box = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'cibar ' + cls, role: 'img',
    'aria-label': `difference ${fmtNum(diff)}, interval ${fmtNum(lo)} to ${fmtNum(hi)}` });
  box.append(svg('line', { x1: W / 2, x2: W / 2, y1: 2, y2: H - 2, class: 'zero' }));
  box.append(svg('rect', { x: Math.min(x(0), x(diff)), y: 8, width: Math.abs(x(diff) - x(0)),
    height: H - 16, class: 'fill' }));
  box.append(svg('line', { x1: x(lo), x2: x(hi), y1: H / 2, y2: H / 2, class: 'whisker' }));
  box.append(svg('line', { x1: x(lo), x2: x(lo), y1: 6, y2: H - 6, class: 'whisker' }));
  box.append(svg('line', { x1: x(hi), x2: x(hi), y1: 6, y2: H - 6, class: 'whisker' }));
  box.append(svg('circle', { cx: x(diff), cy: H / 2, r: 3.5, class: 'point' }));
  box.dataset.verdict = cls;
  return box;
}
