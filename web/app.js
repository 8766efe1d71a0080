// app.js - the ftuned dashboard: a single page with hash routes, one per
// view (#/jobs/12, #/models/NAME, ...), so every view has its own URL and
// the back button works.  Everything is read from /api/v1/; the DOM is
// built with textContent only, never from HTML strings.
import { lineChart, histogram, ciBar, fmtNum } from './chart.js';
import { wordDiff, renderDiff } from './diff.js';

const POLL_MS = 1500;
const view = document.getElementById('view');
let cleanup = [];          // timers of the current view, cleared on navigation

// h('tag.class', {attr}, children...): an element, children as text or nodes.
function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const e = document.createElement(tag);
  if (classes.length) e.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const link = (href, text) => h('a', { href }, text);
const esc = encodeURIComponent;

async function api(path) {
  const res = await fetch('/api/v1/' + path, { cache: 'no-store', credentials: 'same-origin' });
  if (res.status === 401) {
    location.href = '/login.html';
    throw new Error('a dashboard token is required');
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ? body.error.message : 'HTTP ' + res.status);
  setConnection(true);
  return body;
}

function setConnection(ok) {
  const pill = document.getElementById('conn');
  pill.textContent = ok ? 'live' : 'unreachable';
  pill.className = 'pill ' + (ok ? 'ok' : 'bad');
}

function every(ms, fn) {
  const t = setInterval(fn, ms);
  cleanup.push(() => clearInterval(t));
}

function fmtTime(unix) {
  if (!unix) return '–';
  const d = new Date(unix * 1000);
  return d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

function fmtDuration(s) {
  if (s === null || s === undefined) return '–';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor(s % 86400 / 3600) + ' h';
}

function fmtBytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}

const stateBadge = s => h('span.badge.' + String(s).toLowerCase(), {}, s);

function dl(rows) {
  return h('dl.grid', {}, rows.filter(Boolean).map(([k, v, field]) =>
    [h('dt', {}, k), h('dd', field ? { dataset: { field } } : {}, v)]));
}

// Cells carry their column's name, so a narrow screen can stack each row
// as a card with labels (style.css).
function table(head, rows, cls = '') {
  for (const r of rows)
    [...r.children].forEach((c, i) => { if (head[i]) c.dataset.label = head[i]; });
  return h('div.scroll', {}, h('table' + (cls ? '.' + cls : ''), {},
    h('thead', {}, h('tr', {}, head.map(c => h('th', {}, c)))),
    h('tbody', {}, rows)));
}

function section(title, ...body) {
  return h('section.card', {}, h('h2', {}, title), ...body);
}

function progress(j) {
  const pct = j.total_steps ? Math.min(100, 100 * j.step / j.total_steps) : 0;
  return h('div.progress', { role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
    'aria-valuenow': pct.toFixed(0) }, h('div.fill', { dataset: { pct: pct.toFixed(0) } }),
  h('span', {}, `${j.step} / ${j.total_steps} steps`));
}

// CSP forbids inline styles in markup, but CSSOM properties set from a
// script are allowed: widths of bars are set here.
function sizeBars(root) {
  for (const f of root.querySelectorAll('.progress .fill')) f.style.width = f.dataset.pct + '%';
}

function jobRow(j) {
  return h('tr', { dataset: { job: j.id } },
    h('td', {}, link('#/jobs/' + j.id, '#' + j.id)),
    h('td', {}, j.kind),
    h('td', {}, stateBadge(j.state)),
    h('td', {}, j.spec ? j.spec.base_model : ''),
    h('td', {}, j.spec ? j.spec.data : ''),
    h('td', {}, j.spec ? `${j.spec.type || ''} ${j.spec.method || ''}` : ''),
    h('td.num', {}, `${j.step}/${j.total_steps}`),
    h('td.num', {}, fmtNum(j.loss)),
    h('td.num', {}, fmtNum(j.val_loss)),
    h('td', {}, j.result_model ? link('#/models/' + esc(j.result_model), j.result_model) : ''),
    h('td', {}, fmtTime(j.created_at)));
}

const JOB_HEAD = ['Job', 'Kind', 'State', 'Base', 'Data', 'Type', 'Steps', 'Loss', 'Val loss',
  'Result', 'Submitted'];

// ---- Overview ----

async function pageOverview() {
  const statusBox = h('div');
  const running = h('div');
  const queued = h('div');
  const recent = h('div');
  view.replaceChildren(h('h1', {}, 'Overview'),
    section('Daemon', statusBox), section('Running', running), section('Queue', queued),
    section('Recent results', recent));
  async function refresh() {
    const [st, jobs, evals] = await Promise.all([api('status'), api('jobs?limit=200'),
      api('evals').catch(() => ({ evals: [] }))]);
    const evalOf = new Map(evals.evals.map(e => [e.job_id, e]));
    statusBox.replaceChildren(dl([
      ['Version', st.version, 'version'], ['Uptime', fmtDuration(st.uptime_ms / 1000), 'uptime'],
      ['PID', st.pid, 'pid'], ['State directory', st.state_dir, 'state_dir'],
      ['Jobs queued or running', st.queue_length, 'queue_length'],
      ['Training threads', st.training_threads, 'training_threads'],
      ['Control socket', st.socket_url, 'socket_url']]));
    const run = jobs.jobs.filter(j => j.state === 'RUNNING');
    running.replaceChildren(run.length ? h('div', {}, run.map(j => h('div.running', {},
      h('p', {}, link('#/jobs/' + j.id, `Job #${j.id}`), ` ${j.kind} of ${j.spec.base_model} on `
        + `${j.spec.data}`, j.stage ? ` (${j.stage})` : ''),
      progress(j),
      h('p.muted', {}, `loss ${fmtNum(j.loss)} · ETA ${fmtDuration(j.eta_s)} · `
        + `${fmtNum(j.tokens_per_s)} tokens/s`)))) : h('p.muted', {}, 'Nothing is running.'));
    sizeBars(running);
    // The queue's order: priority first, then submission.
    const q = jobs.jobs.filter(j => j.state === 'QUEUED')
      .sort((a, b) => (b.spec.priority || 0) - (a.spec.priority || 0) || a.id - b.id);
    queued.replaceChildren(q.length ? table(['#', ...JOB_HEAD], q.map((j, i) => {
      const r = jobRow(j);
      r.prepend(h('td.num', {}, i + 1));
      return r;
    })) : h('p.muted', {}, 'The queue is empty.'));
    const done = jobs.jobs.filter(j => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state))
      .sort((a, b) => b.finished_at - a.finished_at).slice(0, 8);
    recent.replaceChildren(done.length ? table(['Job', 'State', 'Result', 'Base val loss',
      'Val loss', 'Finished'], done.map(j => h('tr', {},
      h('td', {}, link('#/jobs/' + j.id, '#' + j.id + ' ' + j.kind)),
      h('td', {}, stateBadge(j.state)),
      h('td', {}, j.result_model ? link('#/models/' + esc(j.result_model), j.result_model)
        : evalOf.has(j.id) ? link('#/evals/' + evalOf.get(j.id).id, 'evaluation '
          + evalOf.get(j.id).models.map(m => m.name).join(' vs ')) : j.error),
      h('td.num', {}, fmtNum(j.base_val_loss)), h('td.num', {}, fmtNum(j.val_loss)),
      h('td', {}, fmtTime(j.finished_at))))) : h('p.muted', {}, 'No finished jobs yet.'));
  }
  await refresh();
  every(POLL_MS * 2, () => refresh().catch(() => setConnection(false)));
}

// ---- Jobs ----

async function pageJobs(params) {
  const state = params.get('state') || '';
  const user = params.get('user') || '';
  const form = h('form.filters', { onsubmit: e => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (sel.value) p.set('state', sel.value);
    if (uid.value.trim()) p.set('user', uid.value.trim());
    location.hash = '#/jobs' + (p.toString() ? '?' + p : '');
  } });
  const sel = h('select', { name: 'state', 'aria-label': 'state' },
    ['', 'QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED'].map(s =>
      h('option', { value: s, selected: s === state }, s || 'any state')));
  const uid = h('input', { name: 'user', placeholder: 'owner uid', inputmode: 'numeric',
    value: user, size: 8 });
  form.append(sel, uid, h('button', { type: 'submit' }, 'Filter'));
  sel.addEventListener('change', () => form.requestSubmit());
  const body = h('div');
  view.replaceChildren(h('h1', {}, 'Jobs'), section('Filters', form), section('Jobs', body));
  async function refresh() {
    const p = new URLSearchParams({ limit: 500 });
    if (state) p.set('state', state);
    if (user) p.set('user', user);
    const jobs = await api('jobs?' + p);
    body.replaceChildren(jobs.jobs.length ? table(JOB_HEAD, jobs.jobs.map(jobRow), 'jobs')
      : h('p.muted', {}, 'No jobs match.'));
  }
  await refresh();
  every(POLL_MS * 2, () => refresh().catch(() => setConnection(false)));
}

async function pageJob(id) {
  const job = await api('jobs/' + id);
  const ev = job.kind === 'eval' ? (await api('evals')).evals.find(e => e.job_id === job.id) : null;
  const head = h('div');
  const charts = {
    loss: lineChart('Loss'),
    lr: lineChart('Learning rate'),
    tps: lineChart('Tokens per second'),
  };
  const ckpt = h('div');
  const logs = h('pre.logs', { dataset: { empty: '1' } });
  const spec = job.spec ? table(['Field', 'Value'], Object.entries(job.spec).map(([k, v]) =>
    h('tr', {}, h('td', {}, k), h('td', {}, String(v))))) : h('p', {}, 'no specification');
  view.replaceChildren(h('h1', {}, `Job #${id}`), section('Status', head),
    section('Training curves', h('div.charts', {}, charts.loss.el, charts.lr.el, charts.tps.el)),
    section('Checkpoints', ckpt), section('Log', logs), section('Specification', spec));
  const metrics = [];
  let lastStep = 0, lastSeq = 0, done = false;

  function drawHead(j) {
    head.replaceChildren(dl([
      ['State', stateBadge(j.state), 'state'], j.stage ? ['Stage', j.stage] : null,
      ['Kind', j.kind],
      ['Base model', j.base_model ? link('#/models/' + esc(j.base_model), j.base_model) : '–'],
      ['Dataset', j.dataset ? link('#/datasets/' + esc(j.dataset), j.dataset) : '–'],
      ['Progress', progress(j)],
      ['Epoch', j.epoch], ['Loss', fmtNum(j.loss), 'loss'],
      ['Validation loss', fmtNum(j.val_loss), 'val_loss'],
      ['Base validation loss', fmtNum(j.base_val_loss)],
      ['Tokens/s', fmtNum(j.tokens_per_s)], ['ETA', fmtDuration(j.eta_s)],
      ['Memory estimate', fmtBytes(j.memory_bytes)],
      ['Submitted', fmtTime(j.created_at)], ['Started', fmtTime(j.started_at)],
      ['Finished', fmtTime(j.finished_at)],
      j.error ? ['Error', h('span.error', {}, j.error)] : null,
      ev ? ['Evaluation', link('#/evals/' + ev.id, `#${ev.id} ${ev.models.map(m => m.name).join(' vs ')}`)]
        : ['Resulting model', j.result_model ? link('#/models/' + esc(j.result_model), j.result_model)
          : '–', 'result_model'],
      j.evals && j.evals.length ? ['Evaluations', h('span.evals', {},
        ...j.evals.flatMap((e, i) => [i ? ', ' : '',
          link('#/evals/' + e.id, `#${e.id} ${e.name}`), ` (${e.state.toLowerCase()})`]))] : null,
    ]));
    sizeBars(head);
    ckpt.replaceChildren(j.checkpoints && j.checkpoints.length ? table(['Step', 'File', 'Size'],
      j.checkpoints.sort((a, b) => a.step - b.step).map(c => h('tr', {}, h('td.num', {}, c.step),
        h('td', {}, c.file), h('td.num', {}, fmtBytes(c.size)))))
      : h('p.muted', {}, j.checkpoint_step ? `Last checkpoint at step ${j.checkpoint_step}; `
        + 'checkpoints are deleted when a job finishes.' : 'No checkpoint.'));
  }

  function drawCharts() {
    const pts = k => metrics.map(m => [m.step, m[k]]).filter(p => p[1] !== null);
    charts.loss.update([
      { name: 'loss', cls: 's1', points: pts('loss') },
      { name: 'val_loss', cls: 's2', points: pts('val_loss'), dots: true },
    ]);
    charts.lr.update([{ name: 'lr', cls: 's3', points: pts('lr') }]);
    charts.tps.update([{ name: 'tokens_per_s', cls: 's4', points: pts('tokens_per_s') }]);
  }

  async function poll() {
    const m = await api(`jobs/${id}/metrics?after=${lastStep}`);
    for (const row of m.metrics) {
      // A resumed job reports a step again; the newest row wins.
      const at = metrics.findIndex(x => x.step === row.step);
      if (at >= 0) metrics[at] = row; else metrics.push(row);
      lastStep = Math.max(lastStep, row.step);
    }
    if (m.metrics.length || !done) drawCharts();
    const l = await api(`jobs/${id}/logs?after=${lastSeq}`);
    for (const line of l.lines) {
      logs.append(h('span.' + line.level, {}, `${fmtTime(line.time)} ${line.level} ${line.message}\n`));
      lastSeq = line.seq;
      delete logs.dataset.empty;
    }
    const j = await api('jobs/' + id);
    drawHead(j);
    done = ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(j.state);
    view.dataset.jobState = j.state;
    view.dataset.points = metrics.length;
    return done;
  }
  drawHead(job);
  // A step's validation loss can land after the step's row: one last full
  // read when the job ends picks it up.
  if (await poll()) {
    lastStep = 0;
    metrics.length = 0;
    await poll();
  } else {
    const t = setInterval(async () => {
      try {
        if (await poll()) {
          clearInterval(t);
          lastStep = 0;
          metrics.length = 0;
          await poll();
        }
      } catch (e) { setConnection(false); }
    }, POLL_MS);
    cleanup.push(() => clearInterval(t));
  }
}

// ---- Models ----

async function pageModels() {
  const { models } = await api('models');
  view.replaceChildren(h('h1', {}, 'Models'), section('Registry', models.length ?
    table(['Name', 'Kind', 'Format', 'Arch', 'Parameters', 'Size', 'Base', 'Job', 'Created'],
      models.map(m => h('tr', { dataset: { model: m.name } },
        h('td', {}, link('#/models/' + esc(m.name), m.name)), h('td', {}, m.kind),
        h('td', {}, m.format), h('td', {}, m.arch), h('td.num', {}, fmtNum(m.params)),
        h('td.num', {}, fmtBytes(m.size)),
        h('td', {}, m.base_model ? link('#/models/' + esc(m.base_model), m.base_model) : ''),
        h('td', {}, m.job_id ? link('#/jobs/' + m.job_id, '#' + m.job_id) : ''),
        h('td', {}, fmtTime(m.created_at)))))
    : h('p.muted', {}, 'No models yet: ftctl model import PATH')));
}

// The family tree of a model: from its root base through every tuned
// descendant, left to right, each edge labelled with its job and dataset.
function lineageGraph(root, current) {
  const nodes = [];
  let leaves = 0;
  (function place(n, depth, parent) {
    const node = { n, depth, parent, y: 0 };
    nodes.push(node);
    const kids = n.children || n.descendants || [];
    if (kids.length === 0) node.y = leaves++;
    else {
      const ys = kids.map(k => place(k, depth + 1, node).y);
      node.y = (ys[0] + ys[ys.length - 1]) / 2;
    }
    return node;
  })(root, 0, null);
  const depth = Math.max(...nodes.map(n => n.depth)) + 1;
  const BW = 150, BH = 40, GX = 90, GY = 22;
  const W = depth * BW + (depth - 1) * GX + 20, H = Math.max(leaves, 1) * (BH + GY) + 10;
  const NS = 'http://www.w3.org/2000/svg';
  const s = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const g = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'lineage', role: 'img',
    'aria-label': 'model lineage', width: W });
  const pos = n => ({ x: 10 + n.depth * (BW + GX), y: 5 + n.y * (BH + GY) });
  for (const node of nodes) {
    if (!node.parent) continue;
    const a = pos(node.parent), b = pos(node);
    const x1 = a.x + BW, y1 = a.y + BH / 2, x2 = b.x, y2 = b.y + BH / 2;
    g.append(s('path', { d: `M${x1},${y1} C${x1 + GX / 2},${y1} ${x2 - GX / 2},${y2} ${x2},${y2}`,
      class: 'edge' }));
    const label = s('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle',
      class: 'edge-label' }, `job ${node.n.job_id}`);
    g.append(label);
    g.append(s('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 + 10, 'text-anchor': 'middle',
      class: 'edge-label' }, [node.n.dataset, node.n.method].filter(Boolean).join(' · ')));
  }
  for (const node of nodes) {
    const p = pos(node);
    const a = s('a', { href: '#/models/' + esc(node.n.name), 'data-node': node.n.name });
    a.append(s('rect', { x: p.x, y: p.y, width: BW, height: BH, rx: 6,
      class: 'node ' + node.n.kind + (node.n.name === current ? ' current' : '') }));
    const name = node.n.name.length > 20 ? node.n.name.slice(0, 19) + '…' : node.n.name;
    a.append(s('text', { x: p.x + BW / 2, y: p.y + 17, 'text-anchor': 'middle', class: 'node-name' },
      name));
    a.append(s('text', { x: p.x + BW / 2, y: p.y + 32, 'text-anchor': 'middle', class: 'node-kind' },
      node.n.kind + (node.n.job_id ? ' · job ' + node.n.job_id : '')));
    a.append(s('title', {}, node.n.name));
    g.append(a);
  }
  return h('div.scroll', {}, g);
}

async function pageModel(name) {
  const m = await api('models/' + esc(name));
  const evals = (await api('evals')).evals.filter(e => e.models.some(x => x.id === m.id));
  const rootName = m.ancestors.length ? m.ancestors[m.ancestors.length - 1].name : m.name;
  const root = rootName === m.name ? m : await api('models/' + esc(rootName));
  const lin = m.lineage && Object.keys(m.lineage).length ? m.lineage : null;
  view.replaceChildren(h('h1', {}, m.name),
    section('Model', dl([
      ['Kind', m.kind, 'kind'], ['Format', m.format], ['Architecture', m.arch],
      ['Parameters', fmtNum(m.params)], ['Size', fmtBytes(m.size)], ['Tokenizer', m.tokenizer],
      ['Base', m.base_model ? link('#/models/' + esc(m.base_model), m.base_model) : '–'],
      ['Made by', m.job_id ? link('#/jobs/' + m.job_id, 'job #' + m.job_id) : 'import'],
      lin && lin.dataset ? ['Dataset', link('#/datasets/' + esc(lin.dataset.name), lin.dataset.name)]
        : null,
      lin && lin.metrics ? ['Validation loss', `${fmtNum(lin.metrics.base_val_loss)} (base) → `
        + `${fmtNum(lin.metrics.val_loss)}`] : null,
      ['Created', fmtTime(m.created_at)]])),
    section('Lineage', h('p.muted', {}, 'Base chain: ',
      m.ancestors.slice().reverse().map((a, i) => [i ? ' → ' : '', link('#/models/' + esc(a.name),
        a.name)])), lineageGraph({ ...root, children: root.descendants }, m.name)),
    lin ? section('Training recipe', table(['Field', 'Value'], [
      ['type', lin.type], ['method', lin.method], ['dataset blake2b', lin.dataset && lin.dataset.blake2b],
      ...Object.entries(lin.hyperparameters || {})].map(([k, v]) =>
      h('tr', {}, h('td', {}, k), h('td', {}, String(v)))))) : null,
    section('Evaluations', evals.length ? table(['Evaluation', 'State', 'Models', 'Dataset'],
      evals.map(e => h('tr', {}, h('td', {}, link('#/evals/' + e.id, `#${e.id} ${e.name}`)),
        h('td', {}, stateBadge(e.state)), h('td', {}, e.models.map(x => x.name).join(' vs ')),
        h('td', {}, e.dataset)))) : h('p.muted', {}, 'Not evaluated yet.')),
    section('Files', table(['File', 'Size', 'BLAKE2b-256'], m.files.map(f => h('tr', {},
      h('td', {}, f.name), h('td.num', {}, fmtBytes(f.size)), h('td.hash', {}, f.blake2b))))),
    section('Export', h('p.muted', {}, 'Commands to run on the daemon host:'),
      h('pre.commands', {}, m.export_commands.join('\n'))),
    section('Configuration', h('pre', {}, JSON.stringify(m.config, null, 2))));
}

// ---- Datasets ----

async function pageDatasets() {
  const { datasets } = await api('datasets');
  view.replaceChildren(h('h1', {}, 'Datasets'), section('Datasets', datasets.length ?
    table(['Name', 'Kind', 'Records', 'Held out', 'Size', 'BLAKE2b-256', 'Created'],
      datasets.map(d => h('tr', { dataset: { dataset: d.name } },
        h('td', {}, link('#/datasets/' + esc(d.name), d.name)), h('td', {}, d.kind),
        h('td.num', {}, d.records), h('td.num', {}, d.validation_records),
        h('td.num', {}, fmtBytes(d.bytes)), h('td.hash', {}, d.blake2b.slice(0, 16) + '…'),
        h('td', {}, fmtTime(d.created_at)))))
    : h('p.muted', {}, 'No datasets yet: ftctl data add FILE')));
}

// A conversation shows one row per message (role, content, tool calls),
// then its tools; an instruction record its fields.
function sampleView(rec) {
  if (typeof rec === 'string') return h('pre.sample', {}, rec);
  if (rec.text !== undefined) return h('pre.sample', {}, rec.text);
  if (Array.isArray(rec.messages)) {
    const call = c => ` → ${c.function && c.function.name}(${typeof (c.function || {}).arguments === 'string'
      ? c.function.arguments : JSON.stringify((c.function || {}).arguments)})`;
    return h('dl.sample', {}, [
      rec.messages.map(m => [h('dt', {}, m.role + (m.weight === 0 ? ' (not trained)' : '')),
        h('dd', {}, (m.content || '') + (m.tool_calls || []).map(call).join(''))]),
      rec.tools ? [h('dt', {}, 'tools'), h('dd', {}, rec.tools.map(t => (t.function || {}).name).join(', '))] : []]);
  }
  return h('dl.sample', {}, Object.entries(rec).filter(([, v]) => v !== '').map(([k, v]) =>
    [h('dt', {}, k), h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v))]));
}

// The turns an evaluation prompted with: its record's messages before the
// last (the reference), or an instruction record's system and user turn.
function promptTurns(rec) {
  if (rec && Array.isArray(rec.messages)) return { messages: rec.messages.slice(0, -1), tools: rec.tools };
  if (rec && rec.instruction !== undefined)
    return { messages: [rec.system ? { role: 'system', content: rec.system } : null,
      { role: 'user', content: rec.instruction + (rec.input ? '\n\n' + rec.input : '') }].filter(Boolean) };
  return null;
}

// The dataset records of an evaluation's examples, by index: its split's
// records in order (all: the training part, then the validation part).
async function evalRecords(e, indexes) {
  const ds = 'datasets/' + e.dataset_id;
  const nTrain = (e.spec || {}).split === 'all' ? (await api(ds + '?samples=0').catch(() => ({}))).records || 0 : 0;
  const recs = {};
  await Promise.all(indexes.map(async i => {
    const [part, at] = i < nTrain ? ['train', i] : ['validation', i - nTrain];
    const r = await api(`${ds}?part=${part}&offset=${at}&samples=1`).catch(() => null);
    if (r && r.samples && r.samples.length) recs[i] = r.samples[0];
  }));
  return recs;
}

// Token counts depend on the tokenizer and the prompt template, so the
// page asks for a model (by default the base of the latest job on this
// dataset, with that job's template) and the daemon tokenizes as training
// would.
async function tokenCounter(d, params) {
  const [{ models }, { jobs }] = await Promise.all([api('models'), api('jobs?limit=200')]);
  const box = h('div');
  if (!models.length) {
    box.append(h('p.muted', {}, 'Import a model to count tokens with its tokenizer.'));
    return box;
  }
  const last = jobs.find(j => j.kind === 'train' && j.spec && j.dataset_id === d.id);
  const model = params.get('model') || (last && models.some(m => m.id === last.base_id)
    ? models.find(m => m.id === last.base_id).name : models[0].name);
  const template = params.get('template') || (last && last.spec.template) || '';
  const sel = h('select', { name: 'model', 'aria-label': 'model' },
    models.map(m => h('option', { value: m.name, selected: m.name === model }, m.name)));
  const tIn = h('input', { name: 'template', value: template, 'aria-label': 'template', size: 28,
    disabled: d.kind === 'text' });
  const form = h('form.filters', { onsubmit: e => {
    e.preventDefault();
    location.hash = `#/datasets/${esc(d.name)}?` + new URLSearchParams({ model: sel.value,
      template: tIn.value });
  } }, h('span.muted', {}, 'tokenizer of'), sel, d.kind === 'text' ? null : [h('span.muted', {},
    'template'), tIn], h('button', { type: 'submit' }, 'Count'));
  const out = h('div', { dataset: { tokens: '' } });
  box.append(form, out);
  try {
    const seqLen = last ? last.spec.seq_len : 0;
    const q = d.kind === 'text' ? { model } : { model, template };
    if (seqLen) q.seq_len = seqLen;
    const t = await api(`datasets/${esc(d.name)}/tokens?` + new URLSearchParams(q));
    out.dataset.tokens = t.tokens;
    out.append(dl([
      ['Tokens', `${fmtNum(t.tokens)}` + (t.counted < t.records ? ` in the first ${t.counted} records`
        : ''), 'tokens'],
      d.kind === 'text' ? null : ['Prompt / response', `${fmtNum(t.prompt_tokens)} / `
        + `${fmtNum(t.tokens - t.prompt_tokens)} (response includes EOS)`],
      ['Per record', `${t.min}–${t.max}, mean ${fmtNum(t.mean)}`],
      t.seq_len ? ['Longer than seq_len', `${t.longer} of ${t.counted} records exceed ${t.seq_len} `
        + `tokens (job #${last.id}'s --seq-len): training leaves out their earliest turns, or the start of their prompt`, 'longer'] : null]));
  } catch (e) {
    out.append(h('p.error', {}, e.message));
  }
  return box;
}

async function pageDataset(name, params) {
  const offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
  const per = 5;
  const d = await api(`datasets/${esc(name)}?samples=${per}&offset=${offset}`);
  const st = d.stats || {};
  const kp = new URLSearchParams(params);
  kp.delete('offset');
  const keep = kp.toString() ? kp + '&' : '';
  const pager = h('p.pager', {},
    offset > 0 ? link(`#/datasets/${esc(name)}?${keep}offset=${Math.max(0, offset - per)}`, '← previous')
      : h('span.muted', {}, '← previous'),
    ` records ${offset + 1}–${offset + d.samples.length} of ${d.records} `,
    offset + per < d.records ? link(`#/datasets/${esc(name)}?${keep}offset=${offset + per}`, 'next →')
      : h('span.muted', {}, 'next →'));
  const tokens = await tokenCounter(d, params);
  view.replaceChildren(h('h1', {}, d.name),
    section('Dataset', dl([['Kind', d.kind], ['Training records', d.records, 'records'],
      ['Validation records', d.validation_records, 'validation_records'],
      ['Size', fmtBytes(d.bytes)], ['Record length', `${st.min_bytes}–${st.max_bytes} bytes, `
        + `mean ${fmtNum(st.mean_bytes)}`],
      ['BLAKE2b-256', h('span.hash', {}, d.blake2b)], ['Created', fmtTime(d.created_at)]])),
    section('Tokens', tokens),
    section('Length histogram', histogram('Training records by length', st.histogram)),
    section('Samples', pager, h('div.samples', {}, d.samples.map(s => sampleView(s)))),
    section('Validation report', h('pre', {}, d.report || 'no report')));
}

// ---- Evaluations ----

// The metrics an evaluation computes, in order (EvalInfo.metrics: "a,b,c").
const metricList = e => (e.metrics ? e.metrics.split(',') : []);

async function pageEvals() {
  const { evals } = await api('evals');
  view.replaceChildren(h('h1', {}, 'Evaluations'), section('Evaluations', evals.length ?
    table(['Evaluation', 'State', 'Models', 'Dataset', 'Examples', 'Metrics', 'Created'],
      evals.map(e => h('tr', { dataset: { eval: e.id } },
        h('td', {}, link('#/evals/' + e.id, `#${e.id} ${e.name}`)), h('td', {}, stateBadge(e.state)),
        h('td', {}, e.models.map(m => m.name).join(' vs ')), h('td', {}, e.dataset),
        h('td.num', {}, e.examples), h('td', {}, metricList(e).join(', ')),
        h('td', {}, fmtTime(e.created_at)))))
    : h('p.muted', {}, 'No evaluations yet: ftctl eval run --models BASE,TUNED --data DATASET')));
}

function summaryTable(e) {
  const a = 0, models = e.models;
  const rows = [];
  const diffs = e.stats.filter(s => s.versus === a && s.model !== a);
  const last = models.length - 1;
  const cell = (st, key) => h('td.num', { dataset: { value: key } }, st ? fmtNum(st.mean) : '–',
    st ? h('small', {}, ` [${fmtNum(st.lo)}, ${fmtNum(st.hi)}]`) : '');
  for (const metric of e.summary_metrics) {
    const mean = i => e.stats.find(s => s.metric === metric && s.model === i && s.versus === -1);
    const d = diffs.find(s => s.metric === metric && s.model === last);
    const hib = (d || mean(a) || {}).higher_is_better;
    // Each row on its own scale: metrics differ in units, and what a reader
    // needs is where the interval lies against zero.
    const scale = d ? 1.15 * Math.max(Math.abs(d.lo), Math.abs(d.hi), Math.abs(d.mean)) : 1;
    rows.push(h('tr', { dataset: { metric } },
      h('th', {}, metric, h('span.muted', { title: hib ? 'higher is better' : 'lower is better' },
        hib ? ' ↑' : ' ↓')),
      cell(mean(a), 'a'), cell(mean(last), 'b'),
      d ? h('td.num', { dataset: { value: 'diff' } }, (d.mean > 0 ? '+' : '') + fmtNum(d.mean),
        h('small', {}, ` [${fmtNum(d.lo)}, ${fmtNum(d.hi)}]`)) : h('td.num', {}, '–'),
      h('td.cicell', {}, d ? ciBar(d.mean, d.lo, d.hi, scale, d.higher_is_better) : ''),
      h('td.num', { dataset: { value: 'wtl' } }, d ? `${d.wins} / ${d.ties} / ${d.losses}` : '–')));
  }
  return table(['Metric', models[a] ? models[a].name : 'first', models[last] ? models[last].name
    : 'last', 'Difference [95% CI]', 'Difference around 0', 'W / T / L'], rows, 'summary');
}

async function pageEval(id, params) {
  const metric = params.get('metric') || '';
  const sort = params.get('sort') || 'improvement';
  const q = params.get('q') || '';
  const offset = Math.max(0, parseInt(params.get('offset') || '0', 10) || 0);
  const limit = Math.min(100, Math.max(5, parseInt(params.get('limit') || '20', 10) || 20));
  const e = await api('evals/' + id);
  const useMetric = metric || metricList(e)[0] || '';
  const go = (changes) => {
    const p = new URLSearchParams({ metric: useMetric, sort, q, offset, limit });
    for (const [k, v] of Object.entries(changes)) p.set(k, v);
    if (!('offset' in changes)) p.set('offset', 0);
    location.hash = `#/evals/${id}?${p}`;
  };
  const controls = h('form.filters', { onsubmit: ev => { ev.preventDefault(); go({ q: qIn.value }); } });
  const mSel = h('select', { 'aria-label': 'metric', onchange: () => go({ metric: mSel.value }) },
    metricList(e).map(m => h('option', { value: m, selected: m === useMetric }, m)));
  const sSel = h('select', { 'aria-label': 'sort', name: 'sort', onchange: () => go({ sort: sSel.value }) },
    [['improvement', 'largest improvement first'], ['regression', 'largest regression first'],
      ['index', 'dataset order']].map(([v, t]) => h('option', { value: v, selected: v === sort }, t)));
  const qIn = h('input', { type: 'search', placeholder: 'filter text', value: q, 'aria-label': 'filter' });
  controls.append(mSel, sSel, qIn, h('button', { type: 'submit' }, 'Filter'));
  const p = new URLSearchParams({ metric: useMetric, sort, offset, limit });
  if (q) p.set('q', q);
  const ex = metricList(e).length ? await api(`evals/${id}/examples?${p}`) : { examples: [], total: 0 };
  const names = e.models.map(m => m.name);
  const sign = ex.higher_is_better === false ? -1 : 1;
  const recs = await evalRecords(e, ex.examples.map(x => x.index));
  // a conversation as its turns, the prompt as the model saw it beside them
  const promptView = x => {
    const turns = promptTurns(recs[x.index]);
    return turns ? [sampleView(turns), h('details.prompt', {}, h('summary', {}, 'prompt as rendered'),
      h('pre', {}, x.prompt))] : h('div.prompt', {}, x.prompt);
  };
  const rows = ex.examples.map(x => {
    const [pa, pb] = wordDiff(x.outputs[0] || '', x.outputs[x.outputs.length - 1] || '');
    const vals = x.metrics[useMetric] || [];
    return h('tr', { dataset: { index: x.index, delta: x.delta } },
      h('td.num', {}, x.index),
      h('td', {}, promptView(x), h('div.reference', {}, h('b', {}, 'reference: '),
        x.reference)),
      h('td', {}, renderDiff(pa, 'del')), h('td', {}, renderDiff(pb, 'ins')),
      h('td.num', {}, vals.map(fmtNum).join(' → ')),
      h('td.num.delta' + (x.delta * sign > 0 ? '.up' : x.delta * sign < 0 ? '.down' : ''), {},
        (x.delta > 0 ? '+' : '') + fmtNum(x.delta)));
  });
  const pager = h('p.pager', {},
    offset > 0 ? h('a', { href: '#', onclick: ev => { ev.preventDefault(); go({ offset: Math.max(0, offset - limit) }); } },
      '← previous') : h('span.muted', {}, '← previous'),
    ` ${ex.total ? offset + 1 : 0}–${offset + ex.examples.length} of ${ex.total} `,
    offset + limit < ex.total ? h('a', { href: '#', onclick: ev => { ev.preventDefault(); go({ offset: offset + limit }); } },
      'next →') : h('span.muted', {}, 'next →'));
  view.replaceChildren(h('h1', {}, `Evaluation #${e.id} ${e.name}`),
    section('Evaluation', dl([['State', stateBadge(e.state), 'state'],
      ['Models', names.map((n, i) => [i ? ' vs ' : '', link('#/models/' + esc(n), n)])],
      ['Dataset', link('#/datasets/' + esc(e.dataset), e.dataset)],
      ['Examples', `${e.examples}; ${e.done} of ${e.examples * e.models.length} model outputs evaluated`
        + (e.examples_per_s ? ` (${fmtNum(e.examples_per_s)}/s)` : '')],
      ['Job', link('#/jobs/' + e.job_id, '#' + e.job_id)],
      e.error ? ['Error', h('span.error', {}, e.error)] : null])),
    section('Metrics', e.stats.length ? summaryTable(e) : h('p.muted', {}, 'No results yet.'),
      h('p.muted', {}, 'Difference = second model − first, with its 95% paired bootstrap '
        + 'interval; green: better with confidence, red: worse, grey: the interval crosses 0.')),
    section('Examples', controls, pager, table(['#', 'Prompt and reference', names[0] || '',
      names[names.length - 1] || '', useMetric, 'Δ'], rows, 'examples')));
  // While it runs, redraw when its progress moves.
  if (e.state === 'QUEUED' || e.state === 'RUNNING')
    every(POLL_MS * 2, async () => {
      const now = await api('evals/' + id).catch(() => e);
      if (now.state !== e.state || now.done !== e.done) route();
    });
}

// ---- API keys ----

// Usage per key of the OpenAI-compatible API; the keys themselves are
// never shown (the daemon keeps only their hashes).
async function pageKeys() {
  const { keys } = await api('keys');
  view.replaceChildren(h('h1', {}, 'API keys'), section('Keys and their usage', keys.length ?
    table(['Name', 'Owner', 'State', 'Requests', 'Tokens', 'Last used', 'Created', 'Revoked'],
      keys.map(k => h('tr', { dataset: { key: k.name } },
        h('td', {}, k.name), h('td', {}, 'uid ' + k.owner_uid),
        h('td', {}, stateBadge(k.revoked_at ? 'REVOKED' : 'ACTIVE')),
        h('td.num', {}, k.requests.toLocaleString('en')),
        h('td.num', {}, k.tokens.toLocaleString('en')),
        h('td', {}, fmtTime(k.last_used_at)), h('td', {}, fmtTime(k.created_at)),
        h('td', {}, fmtTime(k.revoked_at)))))
    : h('p.muted', {}, 'No API keys yet: ftctl key create --name NAME')));
}

// ---- Router ----

const routes = [
  [/^\/?$/, pageOverview, 'overview'],
  [/^\/jobs$/, pageJobs, 'jobs'],
  [/^\/jobs\/(\d+)$/, pageJob, 'jobs'],
  [/^\/models$/, pageModels, 'models'],
  [/^\/models\/([^/]+)$/, pageModel, 'models'],
  [/^\/datasets$/, pageDatasets, 'datasets'],
  [/^\/datasets\/([^/]+)$/, pageDataset, 'datasets'],
  [/^\/evals$/, pageEvals, 'evals'],
  [/^\/evals\/(\d+)$/, pageEval, 'evals'],
  [/^\/keys$/, pageKeys, 'keys'],
];

let lastPath = null;

async function route() {
  for (const c of cleanup) c();
  cleanup = [];
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  if (path !== lastPath) window.scrollTo(0, 0); // a new page starts at its top
  lastPath = path;
  view.dataset.ready = '';
  delete view.dataset.jobState;
  for (const [re, fn, nav] of routes) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a'))
      a.classList.toggle('active', a.dataset.page === nav);
    const args = m.slice(1).map(decodeURIComponent);
    document.title = 'ftuned · ' + (args[0] ? `${nav} ${args[0]}` : nav);
    try {
      await fn(...args, params);
    } catch (e) {
      view.replaceChildren(h('h1', {}, 'Not available'), h('p.error', {}, e.message),
        h('p', {}, link('#/', 'Back to the overview')));
    }
    view.dataset.ready = '1';
    return;
  }
  view.replaceChildren(h('h1', {}, 'No such page'), h('p', {}, link('#/', 'Overview')));
  view.dataset.ready = '1';
}

window.addEventListener('hashchange', route);
route();
