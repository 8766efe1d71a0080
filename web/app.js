// ftuned dashboard: reads the JSON API of the daemon that serves this page.
'use strict';

const FIELDS = [
  ['version', 'Version'],
  ['uptime_ms', 'Uptime', ms => formatDuration(ms)],
  ['pid', 'PID'],
  ['state_dir', 'State directory'],
  ['schema_version', 'State schema'],
  ['queue_length', 'Jobs queued or running'],
  ['training_threads', 'Training threads'],
  ['socket_url', 'Control socket'],
];

function formatDuration(ms) {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min';
  return Math.floor(s / 86400) + ' d ' + Math.floor(s % 86400 / 3600) + ' h';
}

function renderStatus(st) {
  const dl = document.getElementById('status');
  dl.replaceChildren();
  for (const [key, label, fmt] of FIELDS) {
    const dt = document.createElement('dt');
    const dd = document.createElement('dd');
    dt.textContent = label;
    dd.textContent = fmt ? fmt(st[key]) : String(st[key]);
    dd.dataset.field = key;
    dl.append(dt, dd);
  }
}

function setConnection(ok, text) {
  const pill = document.getElementById('conn');
  pill.textContent = text;
  pill.className = 'pill ' + (ok ? 'ok' : 'bad');
}

async function refresh() {
  const err = document.getElementById('error');
  try {
    const res = await fetch('/api/v1/status', { cache: 'no-store' });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    renderStatus(await res.json());
    setConnection(true, 'live');
    err.hidden = true;
  } catch (e) {
    setConnection(false, 'unreachable');
    err.textContent = 'Cannot read /api/v1/status: ' + e.message;
    err.hidden = false;
  }
}

refresh();
setInterval(refresh, 2000);
