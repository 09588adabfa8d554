// Signalman dashboard: the list of releases and one train at a time, kept up
// to date by one server-sent event stream per page. Everything a Release says
// is untrusted: it reaches the page as text nodes and attributes, never as HTML.
'use strict';

const meta = (n) => document.querySelector(`meta[name="${n}"]`).content;
const TOKEN = meta('signalman-token');
const ACTIONS = meta('signalman-actions') === 'true';
const SCOPE = meta('signalman-scope');
const SVG = 'http://www.w3.org/2000/svg';
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

// ---- small DOM helpers ---------------------------------------------------------

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'onclick') e.addEventListener('click', v);
    else if (k === 'onchange') e.addEventListener('change', v);
    else if (k === 'oninput') e.addEventListener('input', v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(e, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// One formatter each: toLocale*String builds a new one per call, which made
// a redraw of a 50-service train spend most of its time formatting times.
const TIME = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const DATE_TIME = new Intl.DateTimeFormat([], { dateStyle: 'medium', timeStyle: 'medium', hour12: false });
const time = (t) => (t ? TIME.format(new Date(t)) : '');
const dateTime = (t) => (t ? DATE_TIME.format(new Date(t)) : '');

function since(from, to) {
  let s = Math.max(0, Math.round((new Date(to) - new Date(from)) / 1000));
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return (h ? `${h}h` : '') + (h || m ? `${m}m` : '') + `${s}s`;
}

const ordinal = (n) => n + (n % 10 === 1 && n % 100 !== 11 ? 'st' : n % 10 === 2 && n % 100 !== 12 ? 'nd' : n % 10 === 3 && n % 100 !== 13 ? 'rd' : 'th');

function number(v) {
  if (v === null || v === undefined) return '—';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1000 || a < 0.001 ? v.toExponential(2) : String(+v.toPrecision(3));
}

function badge(phase, note) {
  // `Paused (paused)` says it twice; the note is for a phase that does not say it.
  const extra = note && note.toLowerCase() !== phase.toLowerCase() ? ` (${note})` : '';
  return el('span', { class: `badge phase-${phase}`, 'data-phase': phase }, phase, extra);
}

// ---- the one stream of this page --------------------------------------------------

let stream = null;
function follow(url, kind, draw) {
  if (stream) stream.close();
  const live = document.getElementById('live');
  live.dataset.state = 'connecting';
  live.textContent = 'connecting';
  stream = new EventSource(url);
  stream.addEventListener(kind, (ev) => {
    live.dataset.state = 'live';
    live.textContent = 'live';
    const view = JSON.parse(ev.data);
    showTrouble(view.trouble);
    draw(view);
  });
  stream.addEventListener('gone', (ev) => {
    const g = JSON.parse(ev.data);
    main(el('p', { class: 'empty' }, `Release ${g.namespace}/${g.name} is gone. `, el('a', { href: '#/' }, 'All releases')));
  });
  stream.onerror = () => {
    live.dataset.state = 'reconnecting';
    live.textContent = 'reconnecting';
  };
}

function showTrouble(t) {
  const box = document.getElementById('trouble');
  box.hidden = !t;
  box.textContent = t || '';
}

function main(...children) {
  const m = document.getElementById('main');
  m.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

// ---- the list ---------------------------------------------------------------------

const filters = { namespace: '', phase: '', text: '' };
let lastList = null;

function drawList(view) {
  lastList = view;
  let table = document.getElementById('releases');
  if (!table) {
    const ns = el('select', { id: 'filter-namespace', onchange: (e) => { filters.namespace = e.target.value; drawRows(); } });
    const ph = el('select', { id: 'filter-phase', onchange: (e) => { filters.phase = e.target.value; drawRows(); } });
    const tx = el('input', { id: 'filter-text', type: 'search', placeholder: 'name or owner', oninput: (e) => { filters.text = e.target.value; drawRows(); } });
    table = el('table', { id: 'releases', class: 'releases' },
      el('thead', {}, el('tr', {}, ['Namespace', 'Release', 'Phase', 'Owner', 'Wave', 'Progress', 'Risk', 'Age'].map((h) => el('th', {}, h)))),
      el('tbody', {}));
    main(
      el('section', { class: 'list' },
        el('div', { class: 'filters' },
          el('h1', {}, 'Releases'),
          el('span', { id: 'count', class: 'count' }),
          el('label', {}, 'namespace ', ns), el('label', {}, 'phase ', ph), el('label', {}, tx)),
        table));
  }
  fillSelect(document.getElementById('filter-namespace'), view.namespaces, filters.namespace, 'all');
  fillSelect(document.getElementById('filter-phase'), view.phases, filters.phase, 'all');
  drawRows();
}

function fillSelect(select, values, current, all) {
  const want = [''].concat(values);
  const have = Array.from(select.options).map((o) => o.value);
  if (want.join('\n') !== have.join('\n')) {
    select.replaceChildren(...want.map((v) => el('option', { value: v }, v || all)));
  }
  select.value = want.includes(current) ? current : '';
}

function drawRows() {
  const view = lastList;
  if (!view) return;
  const q = filters.text.toLowerCase();
  const rows = view.releases.filter((r) =>
    (!filters.namespace || r.namespace === filters.namespace) &&
    (!filters.phase || r.phase === filters.phase) &&
    (!q || r.name.toLowerCase().includes(q) || r.owner.toLowerCase().includes(q)));
  const body = document.querySelector('#releases tbody');
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const href = `#/r/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`;
    frag.append(el('tr', { 'data-release': `${r.namespace}/${r.name}`, 'data-phase': r.phase },
      el('td', {}, r.namespace),
      el('td', {}, el('a', { href }, r.name)),
      el('td', {}, badge(r.phase, r.note)),
      el('td', {}, r.owner),
      el('td', {}, r.currentWave || '–'),
      el('td', { class: 'progress' }, r.progress || '–'),
      el('td', { class: 'risk' }, r.risk || '–'),
      el('td', { title: dateTime(r.createdAt) }, r.age || '–')));
  }
  body.replaceChildren(frag);
  const total = view.releases.length;
  document.getElementById('count').textContent = rows.length === total ? `${total}` : `${rows.length} of ${total}`;
  if (!total) body.append(el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No Releases here yet.')));
}

// ---- one train ----------------------------------------------------------------------

let current = null;
// Kept across redraws: the page is rebuilt on every change.
let lastResult = null;
let textOpen = false;

function drawTrain(v) {
  current = v;
  const details = document.querySelector('details.text');
  if (details) textOpen = details.open;
  const head = el('section', { class: 'train-head' },
    el('div', { class: 'title' },
      el('a', { href: '#/', class: 'back' }, '← releases'),
      el('h1', { id: 'train-name' }, v.name), el('span', { class: 'ns' }, v.namespace), badge(v.phase, v.paused ? 'paused' : null)),
    el('div', { class: 'facts' },
      el('span', {}, 'owner ', el('b', {}, v.owner)),
      v.summary && el('span', {}, v.summary),
      v.risk && el('span', {}, 'risk ', el('b', {}, v.risk)),
      v.currentWave && el('span', {}, `wave ${v.currentWave}`),
      v.progress && el('span', {}, v.progress),
      v.startedAt && el('span', { title: dateTime(v.startedAt) },
        v.finishedAt ? `took ${since(v.startedAt, v.finishedAt)}` : `started ${since(v.startedAt, new Date())} ago`)),
    banners(v),
    actions(v));
  main(head,
    el('section', { class: 'panel' }, el('h2', {}, 'Train'), legend(), graph(v)),
    finished(v),
    el('section', { class: 'panel' }, el('h2', {}, 'Metrics'), metrics(v)),
    el('section', { class: 'panel' }, el('h2', {}, 'Timeline ', el('span', { class: 'dim' }, `times in ${ZONE}`)), timeline(v)),
    el('details', { class: 'panel text', open: textOpen }, el('summary', {}, 'As kubectl signalman get shows it (times in UTC)'), el('pre', {}, v.text)));
}

function banners(v) {
  const out = [];
  if (v.hold) out.push(el('div', { class: 'banner hold' }, el('b', {}, `HOLD ${v.hold.id}`), ` ${v.hold.reason}${v.hold.service ? ` on ${v.hold.service}` : ''}: ${v.hold.message}`));
  else if (v.paused) out.push(el('div', { class: 'banner hold' }, el('b', {}, 'PAUSED'), ' by spec.paused: nothing advances, weights stay where they are.'));
  if (v.rollback) {
    out.push(el('div', { class: 'banner breach', id: 'rollback-banner' },
      el('b', {}, `ROLLBACK ${v.rollback.reason}`), v.rollback.service ? ` on ${v.rollback.service}` : '', ` at ${time(v.rollback.at)}`,
      v.rollback.firstDeviationAt ? `, first deviation ${time(v.rollback.firstDeviationAt)}` : '', `: ${v.rollback.message}`));
  }
  return out;
}

function actions(v) {
  if (!ACTIONS) return null;
  const a = v.actions;
  const button = (id, label, act, cls) => el('button', {
    id, class: cls, disabled: !act.possible, title: act.says,
    onclick: () => (id === 'action-abort' ? confirmAbort(v) : post(v, id.replace('action-', ''), {})),
  }, label);
  return el('div', { class: 'actions' },
    button('action-pause', 'Pause', a.pause, ''),
    button('action-resume', 'Resume', a.resume, ''),
    button('action-abort', 'Abort…', a.abort, 'danger'),
    a.approvals.map((p) => el('button', {
      class: 'approve', 'data-approve': p.target,
      onclick: () => confirmApprove(v, p),
    }, `Approve ${p.label}…`)),
    el('span', { id: 'action-result', class: 'result', 'data-ok': lastResult ? String(lastResult.ok) : null }, lastResult ? lastResult.text : ''));
}

async function post(v, action, body) {
  const out = document.getElementById('action-result');
  out.textContent = `${action}…`;
  try {
    const res = await fetch(`/api/releases/${encodeURIComponent(v.namespace)}/${encodeURIComponent(v.name)}/${action}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Signalman-Token': TOKEN },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    lastResult = { text: answer.lines.join(' '), ok: answer.ok };
  } catch (e) {
    lastResult = { text: `${action} failed: ${e}`, ok: false };
  }
  const o = document.getElementById('action-result');
  if (o) {
    o.textContent = lastResult.text;
    o.dataset.ok = String(lastResult.ok);
  }
}

// One dialog for both: what will happen in the command's words, and what to type.
function ask({ title, says, prompt, ok, check, danger }) {
  const d = document.getElementById('confirm');
  const input = document.getElementById('confirm-input');
  const okButton = document.getElementById('confirm-ok');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-says').textContent = says;
  document.getElementById('confirm-prompt').textContent = prompt;
  okButton.textContent = ok;
  okButton.className = danger ? 'danger' : '';
  input.value = '';
  okButton.disabled = true;
  input.oninput = () => { okButton.disabled = !check(input.value); };
  return new Promise((resolve) => {
    d.onclose = () => resolve(d.returnValue === 'ok' && check(input.value) ? input.value : null);
    d.returnValue = '';
    d.showModal();
    input.focus();
  });
}

async function confirmAbort(v) {
  const typed = await ask({
    title: `Abort ${v.namespace}/${v.name}?`,
    says: v.actions.abort.says,
    prompt: `Type ${v.name} to roll it back:`,
    ok: 'Abort and roll back',
    check: (t) => t === v.name,
    danger: true,
  });
  if (typed) post(v, 'abort', { confirm: typed });
}

async function confirmApprove(v, p) {
  const message = await ask({
    title: `Approve ${p.label} of ${v.name}?`,
    says: 'You approve as the user your kubeconfig authenticates; an approval cannot be changed afterwards.',
    prompt: 'What did you check, or why do you approve?',
    ok: 'Approve',
    check: (t) => t.trim().length > 0,
  });
  if (message) post(v, 'approve', p.kind === 'gate' ? { gate: p.target, message } : { step: p.target, message });
}

function legend() {
  const phases = ['Pending', 'Progressing', 'Promoting', 'Promoted', 'Withdrawing', 'Withdrawn', 'Restoring', 'Restored'];
  return el('div', { class: 'legend' }, phases.map((p) => el('span', { class: `key phase-${p}` }, p)),
    el('span', { class: 'dim' }, 'hover a service for the rollback order'));
}

// Services as nodes in columns by wave, dependsOn as edges from left to right.
const NODE_W = 250, NODE_H = 70, COL_GAP = 70, ROW_GAP = 14, PAD = 16, HEAD = 26;

function graph(v) {
  const byWave = v.waves.map(() => []);
  for (const n of v.nodes) byWave[n.wave - 1].push(n);
  const rows = Math.max(1, ...byWave.map((w) => w.length));
  const width = PAD * 2 + byWave.length * NODE_W + Math.max(0, byWave.length - 1) * COL_GAP;
  const height = PAD * 2 + HEAD + rows * NODE_H + (rows - 1) * ROW_GAP;
  const at = {};
  byWave.forEach((wave, i) => wave.forEach((n, j) => {
    at[n.service] = { x: PAD + i * (NODE_W + COL_GAP), y: PAD + HEAD + j * (NODE_H + ROW_GAP) };
  }));
  const root = svg('svg', { id: 'graph', class: 'graph', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `dependency graph of ${v.name}` });
  byWave.forEach((_, i) => root.append(svg('text', { class: 'wave-label', x: PAD + i * (NODE_W + COL_GAP), y: PAD + 12 }, `WAVE ${i + 1}`)));
  const edges = svg('g', { class: 'edges' });
  for (const e of v.edges) {
    const a = at[e.from], b = at[e.to];
    if (!a || !b) continue;
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2, mx = (x1 + x2) / 2;
    edges.append(svg('path', { class: 'edge', 'data-from': e.from, 'data-to': e.to, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
  }
  root.append(edges);
  const order = v.rollbackOrder;
  for (const n of v.nodes) root.append(node(n, at[n.service], order));
  return el('div', { class: 'graph-box' }, root);
}

function node(n, p, order) {
  const pos = n.rollbackPosition;
  const tip = [`${n.service} (${n.kind}, ${n.owner}): ${n.phase}`];
  if (n.message) tip.push(n.message);
  if (pos) tip.push(`on a rollback: restored ${ordinal(pos)} of ${order.length}${pos > 1 ? `, after ${order.slice(0, pos - 1).join(', ')}` : ', first'}`);
  if (n.restoredPosition) tip.push(`restored ${ordinal(n.restoredPosition)} in this rollback`);
  const moving = ['Progressing', 'Promoting', 'Withdrawing'].includes(n.phase) && n.kind === 'deployment';
  let detail = n.bake || n.message || '';
  if (n.awaitingApproval) detail = `waits for an approval of step ${n.step}`;
  const g = svg('g', {
    class: `node phase-${n.phase}${n.breached ? ' breached' : ''}`,
    transform: `translate(${p.x},${p.y})`,
    'data-service': n.service, 'data-wave': n.wave, 'data-phase': n.phase, 'data-weight': n.weight,
    'data-step': n.step, 'data-rollback-position': pos, 'data-restored': n.restoredPosition, 'data-breached': n.breached ? 'true' : null,
    tabindex: 0,
  },
  svg('title', {}, tip.join('\n')),
  svg('rect', { class: 'box', width: NODE_W, height: NODE_H, rx: 8 }),
  svg('text', { class: 'name', x: 10, y: 19 }, clip(n.service, 24)),
  svg('text', { class: 'state', x: NODE_W - 10, y: 19, 'text-anchor': 'end' }, n.breached ? `${n.phase} · breach` : n.phase));
  if (moving || n.weight > 0) {
    g.append(
      svg('rect', { class: 'bar-bg', x: 10, y: 29, width: NODE_W - 60, height: 9, rx: 4 }),
      svg('rect', { class: 'bar', x: 10, y: 29, width: ((NODE_W - 60) * Math.max(0, Math.min(100, n.weight))) / 100, height: 9, rx: 4 }),
      svg('text', { class: 'weight', x: NODE_W - 10, y: 38, 'text-anchor': 'end' }, `${n.weight}%`));
  }
  const step = n.step ? `step ${n.step}/${n.steps}` : '';
  g.append(svg('text', { class: 'detail', x: 10, y: 58 }, clip([step, detail].filter(Boolean).join(' · '), 40)));
  if (pos) g.append(svg('text', { class: 'rb-pos', x: NODE_W - 8, y: NODE_H - 8, 'text-anchor': 'end' }, `↺${pos}`));
  if (n.restoredPosition) {
    g.append(svg('circle', { class: 'restored-mark', cx: NODE_W, cy: 0, r: 11 }),
      svg('text', { class: 'restored-num', x: NODE_W, y: 4, 'text-anchor': 'middle' }, String(n.restoredPosition)));
  }
  return g;
}

const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function finished(v) {
  if (!v.report && !v.restored.length) return null;
  const parts = [el('h2', {}, v.report ? 'Report' : 'Rollback')];
  if (v.restored.length) {
    parts.push(el('div', { class: 'restored' }, el('b', {}, 'Restored, in order: '),
      el('ol', { id: 'restored-order' }, v.restored.map((s) => el('li', { 'data-service': s }, s)))));
  }
  if (v.report) {
    parts.push(el('h3', {}, v.report.title));
    for (const s of v.report.sections) {
      parts.push(el('h4', {}, s.title), el('ul', {}, s.lines.map((l) => el('li', {}, l))));
    }
  }
  return el('section', { class: 'panel report', id: 'report' }, parts);
}

// ---- metrics ---------------------------------------------------------------------------

function metrics(v) {
  if (!v.metrics.length) return el('p', { class: 'dim' }, 'No measurements yet.');
  return el('div', { class: 'charts' }, v.metrics.map((s) => el('div', { class: 'chart-card', 'data-service': s.service },
    el('h3', {}, s.service),
    s.metrics.map((m) => el('div', { class: 'chart' },
      el('div', { class: 'chart-title' }, el('b', {}, m.name), el('span', { class: 'dim' }, ` passes ${m.bound}`)),
      chart(m))))));
}

const CW = 300, CH = 96, CP = 8;

function chart(m) {
  const pts = m.points;
  const root = svg('svg', { class: 'spark', width: CW, height: CH, viewBox: `0 0 ${CW} ${CH}`, 'data-metric': m.name });
  if (!pts.length) {
    root.append(svg('text', { class: 'dim', x: CP, y: CH / 2 }, 'not measured yet'));
    return root;
  }
  const values = pts.flatMap((p) => [p.value, p.stable]).filter((x) => x !== null && x !== undefined);
  if (m.min !== null && m.min !== undefined) values.push(m.min);
  if (m.max !== null && m.max !== undefined) values.push(m.max);
  let lo = Math.min(0, ...values), hi = Math.max(...values, lo + 1e-9);
  hi += (hi - lo) * 0.15;
  const t0 = new Date(pts[0].at).getTime(), t1 = Math.max(t0 + 1, new Date(pts[pts.length - 1].at).getTime());
  const x = (t) => CP + ((new Date(t).getTime() - t0) / (t1 - t0)) * (CW - 2 * CP);
  const y = (val) => CH - CP - ((val - lo) / (hi - lo)) * (CH - 2 * CP);
  // The band of passing values; a comparison's band moves with the stable pods, so none is drawn.
  if (!m.compare) {
    const top = m.max !== null && m.max !== undefined ? y(m.max) : CP;
    const bottom = m.min !== null && m.min !== undefined ? y(m.min) : CH - CP;
    root.append(svg('rect', { class: 'band', x: CP, y: top, width: CW - 2 * CP, height: Math.max(0, bottom - top) }));
    if (m.max !== null && m.max !== undefined) root.append(svg('line', { class: 'threshold', x1: CP, x2: CW - CP, y1: top, y2: top }));
    if (m.min !== null && m.min !== undefined) root.append(svg('line', { class: 'threshold', x1: CP, x2: CW - CP, y1: bottom, y2: bottom }));
  }
  const line = (key, cls) => {
    const d = pts.filter((p) => p[key] !== null && p[key] !== undefined).map((p, i) => `${i ? 'L' : 'M'}${x(p.at).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
    if (d) root.append(svg('path', { class: cls, d }));
  };
  if (m.compare) line('stable', 'stable-line');
  line('value', 'value-line');
  for (const p of pts) {
    const cx = x(p.at), cy = p.value === null || p.value === undefined ? CH - CP : y(p.value);
    const tip = `${time(p.at)} step ${p.step}: ${number(p.value)}${p.stable !== null && p.stable !== undefined ? ` vs stable ${number(p.stable)}` : ''} → ${p.outcome}`;
    root.append(svg('circle', { class: `pt pt-${p.outcome}`, cx, cy, r: p.outcome === 'Pass' ? 2.5 : 4, 'data-outcome': p.outcome }, svg('title', {}, tip)));
  }
  return root;
}

// ---- timeline -----------------------------------------------------------------------------

function timeline(v) {
  const t = v.timeline;
  if (!t.rows.length) return el('p', { class: 'dim' }, 'Nothing has happened yet.');
  const rows = t.rows.map((r) => el('tr', {
    class: `${r.measurement ? 'measurement' : 'entry'} outcome-${r.outcome || 'none'} reason-${r.reason}${r.firstDeviation ? ' first-deviation' : ''}`,
    'data-first-deviation': r.firstDeviation ? 'true' : null,
  },
  el('td', { class: 'at', title: dateTime(r.at) }, time(r.at)),
  el('td', { class: 'offset' }, t.start ? `+${since(t.start, r.at)}` : ''),
  el('td', { class: 'reason' }, r.measurement ? `· ${r.reason}` : r.reason),
  el('td', { class: 'service' }, r.service),
  el('td', { class: 'what' }, r.text, r.firstDeviation ? el('span', { class: 'mark' }, ' ◀ first deviation') : '')));
  const table = el('table', { class: 'timeline', id: 'timeline' }, el('tbody', {}, rows));
  const out = [table];
  if (t.firstDeviationDropped) {
    out.unshift(el('p', { class: 'mark' }, `◀ first deviation at ${time(t.firstDeviationAt)}${t.firstDeviationService ? ` on ${t.firstDeviationService}` : ''} (the measurement itself is no longer kept)`));
  }
  return out;
}

// ---- routing ---------------------------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/r\/([^/]+)\/([^/]+)$/);
  if (m) {
    const [ns, name] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
    document.title = `${name} · Signalman`;
    main(el('p', { class: 'dim' }, 'loading…'));
    current = null;
    lastResult = null;
    follow(`/api/events/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`, 'train', drawTrain);
  } else {
    document.title = 'Releases · Signalman';
    lastList = null;
    main(el('p', { class: 'dim' }, 'loading…'));
    follow('/api/events', 'list', drawList);
  }
}

document.getElementById('scope').textContent = SCOPE ? `namespace ${SCOPE}` : 'every namespace';
const mode = document.getElementById('mode');
mode.textContent = ACTIONS ? 'actions allowed' : 'read-only';
mode.dataset.actions = String(ACTIONS);
window.addEventListener('hashchange', route);
route();
