// dashboard.mjs - the dashboard in real headless Chromium (playwright-core):
// every page against a daemon whose state holds finished jobs and an
// evaluation, a running job's chart growing, the back button, a 360 px
// window, and no script errors or CSP violations.  Screenshots go to
// $SHOTS.  Run by tests/integration/test_browser.sh, which sets the
// environment; prints "ok: ..." per check and exits 1 on the first failure.
import { createRequire } from 'node:module';
import { readFileSync, mkdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const env = process.env;
const require = createRequire(env.PW_DIR + '/');
const { chromium } = require('playwright-core');
const { fmtNum } = await import(pathToFileURL(env.FT_SRC + '/web/chart.js'));
const URL0 = env.WEB_URL;
const evalRpc = JSON.parse(readFileSync(env.EVAL_JSON, 'utf8'));
mkdirSync(env.SHOTS, { recursive: true });

let passed = 0;
function ok(cond, what, detail = '') {
  if (!cond) {
    console.error(`FAIL: ${what} ${detail}`);
    process.exitCode = 1;
    throw new Error(what);
  }
  passed++;
  console.log('ok: ' + what);
}

async function api(path) {
  const r = await fetch(URL0 + '/api/v1/' + path);
  return r.json();
}

// A fresh profile directory each run (playwright passes --user-data-dir).
const browser = await chromium.launchPersistentContext(env.PROFILE_DIR, {
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const problems = [];
async function newPage(width) {
  const page = await browser.newPage();
  await page.setViewportSize({ width, height: 900 });
  page.on('console', m => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', e => problems.push(e.message));
  // Nothing may be fetched from elsewhere: no CDN, no external request.
  page.on('request', r => { if (!r.url().startsWith(URL0) && !r.url().startsWith('data:'))
    problems.push('external request ' + r.url()); });
  return page;
}

async function open(page, hash) {
  await page.goto(URL0 + '/' + hash);
  await page.waitForSelector('#view[data-ready="1"]', { timeout: 10000 });
}

async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0)); // else the sticky header lands mid-page
  await page.screenshot({ path: `${env.SHOTS}/${name}.png`, fullPage: true });
}

try {
  const page = await newPage(1280);
  const job = await api('jobs/' + env.JOB1);
  const metrics = await api(`jobs/${env.JOB1}/metrics`);

  // --- Overview ---
  await open(page, '#/');
  const st = await api('status');
  ok(await page.textContent('dd[data-field="version"]') === st.version, 'overview: daemon version');
  ok(await page.locator(`a[href="#/jobs/${env.JOB1}"]`).count() > 0, 'overview: recent results link the job');
  ok(await page.locator(`a[href="#/evals/${env.EVAL1}"]`).count() > 0,
    'overview: the evaluation among the results');
  const queue = await page.locator('tr[data-job]').evaluateAll(rows =>
    rows.filter(r => r.querySelector('.badge.queued')).map(r => r.dataset.job));
  ok(queue.join() === env.QUEUE, `overview: queued jobs in the order they will run (${queue})`);
  ok(await page.locator('.running a[href="#/jobs/' + env.LONG + '"]').count() === 1,
    'overview: the running job with its progress');
  await shot(page, 'overview');

  // --- Jobs: list, filter in the URL, back button ---
  await open(page, '#/jobs');
  const all = await api('jobs');
  ok(await page.locator('table.jobs tbody tr').count() === all.jobs.length, 'jobs: one row per job');
  await page.selectOption('select[name="state"]', 'SUCCEEDED');
  await page.waitForFunction(() => location.hash === '#/jobs?state=SUCCEEDED');
  await page.waitForSelector('#view[data-ready="1"]');
  const states = await page.locator('table.jobs tbody tr .badge').allTextContents();
  ok(states.length > 0 && states.every(s => s === 'SUCCEEDED'), 'jobs: state filter', states.join());
  await page.goBack();
  await page.waitForFunction(() => location.hash === '#/jobs');
  await page.waitForSelector('#view[data-ready="1"]');
  ok(await page.locator('table.jobs tbody tr').count() === all.jobs.length, 'jobs: back button undoes the filter');
  await shot(page, 'jobs');

  // --- Job page: a point per step ---
  await open(page, '#/jobs/' + env.JOB1);
  await page.waitForFunction(n => document.querySelector('#view').dataset.points == n,
    metrics.metrics.length);
  const npts = s => page.$eval(`polyline[data-series="${s}"]`, e => e.points.numberOfItems);
  ok(await npts('loss') === job.total_steps, 'job: the loss chart has a point per step',
    `${await npts('loss')} vs ${job.total_steps}`);
  const nval = metrics.metrics.filter(m => m.val_loss !== null).length;
  ok(await npts('val_loss') === nval, `job: validation loss, ${nval} points`);
  ok(await npts('lr') === job.total_steps && await npts('tokens_per_s') === job.total_steps,
    'job: learning rate and tokens/s over steps');
  ok(await page.locator(`dd[data-field="result_model"] a[href="#/models/${env.TUNED}"]`).count() === 1,
    'job: the resulting model');
  ok(await page.locator(`span.evals a[href="#/evals/${env.EVAL1}"]`).count() === 1,
    'job: links the evaluation it queued');
  ok((await page.textContent('pre.logs')).includes('registered tuned model'), 'job: the log');
  await shot(page, 'job');

  // --- A running job's chart grows while we watch ---
  await page.goto(URL0 + '/#/jobs/' + env.LONG);
  await page.waitForFunction(() => Number(document.querySelector('#view').dataset.points) > 0,
    null, { timeout: 30000 });
  const n1 = Number(await page.$eval('#view', e => e.dataset.points));
  await page.waitForFunction(n => Number(document.querySelector('#view').dataset.points) >= n + 5,
    n1, { timeout: 30000 });
  const n2 = await npts('loss');
  ok(n2 >= n1 + 5, `job: a running job's chart grows (${n1} -> ${n2} points)`);
  ok(await page.$eval('#view', e => e.dataset.jobState) === 'RUNNING', 'job: it is running');
  await shot(page, 'job-running');

  // --- Models: lineage drawn ---
  await open(page, '#/models');
  ok(await page.locator('tr[data-model]').count() === (await api('models')).models.length, 'models: list');
  await page.click(`a[href="#/models/${env.TUNED}"]`);
  await page.waitForFunction(t => location.hash === '#/models/' + t, env.TUNED);
  await page.waitForSelector('svg.lineage');
  const nodes = await page.$$eval('svg.lineage [data-node]', a => a.map(e => e.dataset.node));
  ok(['stories260K', env.TUNED, env.TUNED + '-full'].every(n => nodes.includes(n)),
    'model: lineage graph from base to descendants', nodes.join());
  ok(await page.locator('svg.lineage path.edge').count() === nodes.length - 1, 'model: an edge per derivation');
  ok(await page.$eval('svg.lineage rect.current', r => r.parentElement.dataset.node) === env.TUNED,
    'model: the model itself highlighted');
  const m = await api('models/' + env.TUNED);
  const hashes = await page.locator('td.hash').allTextContents();
  ok(m.files.length > 0 && m.files.every(f => hashes.includes(f.blake2b)), 'model: file hashes');
  ok((await page.textContent('pre.commands')).includes('ftctl model export'), 'model: export commands');
  ok(await page.locator(`a[href="#/evals/${env.EVAL1}"]`).count() === 1, 'model: its evaluations');
  await shot(page, 'model');
  await page.goBack();
  await page.waitForFunction(() => location.hash === '#/models');
  await page.waitForSelector('#view[data-ready="1"]');
  ok(await page.locator('tr[data-model]').count() === (await api('models')).models.length &&
    await page.locator('svg.lineage').count() === 0, 'models: back button returns to the list');

  // --- Datasets ---
  await open(page, '#/datasets/lines');
  const ds = await api('datasets/lines');
  ok(await page.textContent('dd[data-field="records"]') === String(ds.records), 'dataset: record count');
  ok(await page.locator('svg rect.bar').count() === ds.stats.histogram.length, 'dataset: a bar per bucket');
  const tk = await api(`datasets/lines/tokens?model=stories260K&seq_len=${job.spec.seq_len}&template=`
    + encodeURIComponent(job.spec.template));
  await page.waitForSelector('[data-tokens]:not([data-tokens=""])');
  ok(await page.getAttribute('[data-tokens]', 'data-tokens') === String(tk.tokens),
    `dataset: tokens with the last job's tokenizer and template (${tk.tokens})`);
  ok((await page.textContent('dd[data-field="longer"]')).startsWith(`${tk.longer} of ${tk.counted} `),
    `dataset: ${tk.longer} records longer than seq_len`);
  ok(await page.locator('.samples dl.sample').count() === 5, 'dataset: samples');
  await page.click('text=next →');
  await page.waitForFunction(() => location.hash.includes('offset=5'));
  await page.waitForSelector('#view[data-ready="1"]');
  ok((await page.textContent('.pager')).includes('records 6–10'), 'dataset: samples paged');
  ok((await page.textContent('pre:last-of-type')).includes('valid'), 'dataset: validation report');
  await shot(page, 'dataset');

  // --- Evaluation: the numbers ftctl eval show --json gives ---
  await open(page, '#/evals/' + env.EVAL1);
  const stats = evalRpc.eval.stats;
  const models = evalRpc.eval.models;
  const last = models.length - 1;
  let checked = 0;
  for (const row of await page.locator('table.summary tbody tr').all()) {
    const metric = await row.getAttribute('data-metric');
    const cell = async k => (await row.locator(`td[data-value="${k}"]`).textContent()).trim();
    const mean = i => stats.find(s => s.metric === metric && s.model === i && s.versus === -1);
    const diff = stats.find(s => s.metric === metric && s.model === last && s.versus === 0);
    ok((await cell('a')).startsWith(fmtNum(mean(0).mean) + ' [' + fmtNum(mean(0).lo)),
      `eval: ${metric} of ${models[0].name}`, await cell('a'));
    ok((await cell('b')).startsWith(fmtNum(mean(last).mean) + ' [' + fmtNum(mean(last).lo)),
      `eval: ${metric} of ${models[last].name}`, await cell('b'));
    if (diff) {
      ok((await cell('diff')) === `${diff.mean > 0 ? '+' : ''}${fmtNum(diff.mean)} [${fmtNum(diff.lo)}, `
        + `${fmtNum(diff.hi)}]`, `eval: ${metric} difference and interval`, await cell('diff'));
      ok((await cell('wtl')) === `${diff.wins} / ${diff.ties} / ${diff.losses}`, `eval: ${metric} W/T/L`);
      const verdict = await row.locator('svg.cibar').getAttribute('data-verdict');
      const want = (diff.higher_is_better ? diff.lo > 0 : diff.hi < 0) ? 'better'
        : (diff.higher_is_better ? diff.hi < 0 : diff.lo > 0) ? 'worse' : 'unsure';
      ok(verdict === want, `eval: ${metric} interval bar reads ${want}`);
    }
    checked++;
  }
  ok(checked === new Set(stats.map(s => s.metric)).size, `eval: a row per metric (${checked})`);
  await shot(page, 'eval');

  // The per-example table sorts: improvement first, then regression first.
  const deltas = async () => (await page.locator('table.examples tbody tr').evaluateAll(
    rows => rows.map(r => Number(r.dataset.delta))));
  await page.selectOption('select[aria-label="metric"]', 'loss');
  await page.waitForFunction(() => location.hash.includes('metric=loss'));
  await page.waitForSelector('#view[data-ready="1"]');
  let d = await deltas();
  ok(d.length > 1 && d[0] < d[d.length - 1] && d.every((v, i) => i === 0 || d[i - 1] <= v),
    'eval: examples by largest improvement (loss falls most first)', d.join());
  await page.selectOption('select[name="sort"]', 'regression');
  await page.waitForFunction(() => location.hash.includes('sort=regression'));
  await page.waitForSelector('#view[data-ready="1"]');
  d = await deltas();
  ok(d.length > 1 && d[0] > d[d.length - 1] && d.every((v, i) => i === 0 || d[i - 1] >= v), 'eval: examples by largest regression', d.join());
  ok(await page.locator('table.examples ins, table.examples del').count() > 0,
    'eval: output differences highlighted');
  // Each prompt shows its record's turns (the eval of job 1 is on the
  // validation part), the rendered prompt folded beside them.
  {
    const first = await page.locator('table.examples tbody tr').first();
    const index = Number(await first.getAttribute('data-index'));
    const rec = (await api(`datasets/lines?part=validation&offset=${index}&samples=1`)).samples[0];
    const roles = await first.locator('dl.sample dt').allTextContents();
    const turns = await first.locator('dl.sample dd').allTextContents();
    ok(roles.join() === 'user' && turns[0] === rec.instruction + (rec.input ? '\n\n' + rec.input : ''),
      `eval: example ${index} shows its turns`, `${roles.join()}: ${turns[0]}`);
    ok(await first.locator('details.prompt pre').count() === 1, 'eval: the rendered prompt beside the turns');
  }
  await page.goBack();
  await page.waitForFunction(() => !location.hash.includes('sort=regression'));
  await page.waitForSelector('#view[data-ready="1"]');
  d = await deltas();
  ok(d.length > 1 && d.every((v, i) => i === 0 || d[i - 1] <= v), 'eval: back button restores the sort', d.join());
  const word = (await api(`evals/${env.EVAL1}/examples?limit=1`)).examples[0].reference.split(' ')[0];
  await page.fill('input[type="search"]', word);
  await page.click('form.filters button');
  await page.waitForFunction(() => location.hash.includes('q='));
  await page.waitForSelector('#view[data-ready="1"]');
  const want = (await api(`evals/${env.EVAL1}/examples?metric=loss&q=${encodeURIComponent(word)}`)).total;
  ok((await page.textContent('#view .pager')).includes(`of ${want}`), `eval: filter "${word}" (${want} examples)`);
  await shot(page, 'eval-filtered');

  // --- API keys: usage per key, revoked ones marked ---
  await open(page, '#/keys');
  const keys = (await api('keys')).keys;
  ok(keys.length === 2 && await page.locator('tr[data-key]').count() === keys.length,
    'keys: one row per key');
  ok(await page.textContent('#nav a.active') === 'API keys', 'keys: its navigation link is active');
  for (const k of keys) {
    const row = `tr[data-key="${k.name}"]`;
    ok(await page.textContent(`${row} td[data-label="Requests"]`) === k.requests.toLocaleString('en') &&
      await page.textContent(`${row} td[data-label="Tokens"]`) === k.tokens.toLocaleString('en'),
    `keys: ${k.name}'s usage as the API reports it`);
    ok(await page.textContent(`${row} .badge`) === (k.revoked_at ? 'REVOKED' : 'ACTIVE'),
      `keys: ${k.name} is ${k.revoked_at ? 'revoked' : 'active'}`);
  }
  await shot(page, 'keys');

  // --- A narrow window: nothing wider than the screen ---
  const narrow = await newPage(360);
  for (const [name, hash] of [['overview', '#/'], ['job', '#/jobs/' + env.JOB1],
    ['model', '#/models/' + env.TUNED], ['dataset', '#/datasets/lines'], ['eval', '#/evals/' + env.EVAL1], ['keys', '#/keys']]) {
    await open(narrow, hash);
    const w = await narrow.evaluate(() => document.documentElement.scrollWidth);
    ok(w <= 360, `360 px: ${name} fits (${w} px)`);
    await shot(narrow, 'narrow-' + name);
  }

  ok(problems.length === 0, 'no script errors, CSP violations or external requests', problems.join('; '));
} catch (e) {
  if (!process.exitCode) {
    console.error('FAIL: ' + e.message);
    process.exitCode = 1;
  }
} finally {
  await browser.close();
  console.log(`${passed} passed, ${process.exitCode ? 1 : 0} failed`);
}
