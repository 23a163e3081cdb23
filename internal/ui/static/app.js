// revocast dashboard. Plain JS, no build step, no dependencies.
//
// Everything shown comes from the broadcaster's API with the credential
// typed into the page (kept in memory, or in sessionStorage when asked),
// sent as "Authorization: Bearer …". EventSource cannot send that header,
// so the SSE stream is read with fetch() and parsed here.
'use strict';

const API = '../v1/'; // the page is served at <base>/ui/
const STORE = 'revocast.credential';
const SHOWN = 200; // rows of the revocation table
const LIST_PAGE = 1000; // the API's largest page
const LIST_PAGES = 10; // list at most this many pages (then: search)
const POLL_MS = 2000; // fleet and enforcement refresh
const STALE_MS = 60000; // no event or heartbeat for this long: stale

const $ = (sel) => document.querySelector(sel);

const state = {
  credential: '',
  gen: 0, // bumped on every (re)connect: older loops stop
  abort: null, // AbortController of the stream
  retryMs: 1000,
  head: '',
  lastBeat: 0,
  reader: false,
  filter: null, // {field, value}
  revocations: new Map(), // key -> revocation (with seq)
  listing: null, // events received while a listing is under way
  truncated: false,
  revokedAt: new Map(), // event id -> ms, for the rate chart
  enforcementSupported: undefined,
  enforcement: new Map(), // key -> {seq, e}
  enforceMs: new Map(), // key -> ms from revoked_at to applied everywhere
  fleetSupported: undefined,
  agents: [],
  agentSamples: [], // {t, n}
};

// ---- API ----

function authHeaders() {
  return state.credential ? { Authorization: 'Bearer ' + state.credential } : {};
}

async function api(method, path, body) {
  const init = { method, headers: authHeaders(), cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(API + path, init);
  let data = null;
  try {
    data = await res.json();
  } catch {
    // not JSON: data stays null
  }
  return { status: res.status, ok: res.ok, data };
}

function errorText(r) {
  const msg = (r.data && r.data.error) || 'HTTP ' + r.status;
  return r.data && r.data.field ? msg + ' (' + r.data.field + ')' : msg;
}

// signedOut handles a 401 (or a read refused with 403) for any request:
// everything stops until a credential is given.
function signedOut(r) {
  if (r.status !== 401 && !(r.status === 403 && !state.reader)) return false;
  stop();
  setStatus('off', r.status === 401 ? 'credential needed' : 'refused');
  notice(r.status === 401
    ? (state.credential ? 'The broadcaster refused this credential: ' : 'This broadcaster needs a credential: ') + errorText(r)
    : 'This credential may not read: ' + errorText(r));
  $('#credential').focus();
  return true;
}

// ---- the SSE stream ----

async function follow(gen) {
  let failures = 0; // since the last stream that opened
  while (gen === state.gen) {
    if (failures) {
      setStatus('connecting', 'reconnecting');
      const delay = Math.min(state.retryMs * 2 ** (failures - 1), 30000);
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (gen !== state.gen) return;
    }
    const ctrl = new AbortController();
    state.abort = ctrl;
    try {
      // live events only: the state comes from the listing taken once
      // the stream is subscribed (at "synced")
      const res = await fetch(API + 'events?last_event_id=now', {
        headers: authHeaders(), cache: 'no-store', signal: ctrl.signal,
      });
      if (!res.ok) {
        let data = null;
        try { data = await res.json(); } catch { /* no body */ }
        if (signedOut({ status: res.status, data })) return;
        throw new Error(errorText({ status: res.status, data }));
      }
      failures = 0;
      await readEvents(res.body, (ev) => { if (gen === state.gen) onEvent(ev); });
    } catch (err) {
      if (gen !== state.gen) return;
      notice('The event stream failed: ' + err.message + '; reconnecting.');
    }
    failures++; // like EventSource, wait before connecting again
  }
}

// readEvents parses the text/event-stream format (WHATWG HTML, "server-sent
// events") and calls dispatch for each event and comment.
async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let type = '';
  let data = [];
  let id = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buf);
      if (!m || (m[0] === '\r' && m.index === buf.length - 1)) break; // maybe half a CRLF
      const line = buf.slice(0, m.index);
      buf = buf.slice(m.index + m[0].length);
      if (line === '') {
        if (data.length) dispatch({ type: type || 'message', data: data.join('\n'), id });
        type = '';
        data = [];
        continue;
      }
      if (line[0] === ':') {
        dispatch({ type: 'comment', data: line.slice(1).trim() });
        continue;
      }
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let v = colon < 0 ? '' : line.slice(colon + 1);
      if (v[0] === ' ') v = v.slice(1);
      if (field === 'event') type = v;
      else if (field === 'data') data.push(v);
      else if (field === 'id' && !v.includes('\0')) id = v;
      else if (field === 'retry' && /^\d+$/.test(v)) state.retryMs = Number(v);
    }
  }
}

function seqOf(id) {
  const i = id ? id.lastIndexOf('-') : -1;
  return i < 0 ? 0 : Number(id.slice(i + 1));
}

function onEvent(ev) {
  state.lastBeat = Date.now();
  setStatus('live', 'live');
  switch (ev.type) {
    case 'synced':
      state.head = JSON.parse(ev.data).head || '';
      $('#head').textContent = state.head && 'head ' + state.head;
      if (!state.reader) notice(''); // the stream's own trouble is over
      loadList();
      return;
    case 'reset':
      loadList();
      return;
    case 'revoke': {
      const rev = JSON.parse(ev.data);
      rev.seq = rev.seq || seqOf(ev.id);
      state.head = ev.id;
      $('#head').textContent = 'head ' + ev.id;
      noteRevoked(rev);
      if (state.listing) state.listing.push({ rev });
      applyRevoke(rev);
      if (matches(rev)) fetchEnforcement(rev.key);
      draw();
      return;
    }
    case 'lift': {
      const lift = JSON.parse(ev.data);
      const seq = seqOf(ev.id);
      state.head = ev.id;
      $('#head').textContent = 'head ' + ev.id;
      if (state.listing) state.listing.push({ lift, seq });
      applyLift(lift.key, seq);
      draw();
    }
  }
}

// applyRevoke and applyLift keep the newest word on each key, so that the
// listing and the events that overtook it can be applied in any order.
function applyRevoke(rev) {
  const cur = state.revocations.get(rev.key);
  if ((cur && cur.seq >= rev.seq) || !matches(rev)) return;
  state.revocations.set(rev.key, rev);
}

function applyLift(key, seq) {
  const cur = state.revocations.get(key);
  if (cur && cur.seq < seq) state.revocations.delete(key);
}

function matches(rev) {
  return !state.filter || rev[state.filter.field] === state.filter.value;
}

function noteRevoked(rev) {
  const t = Date.parse(rev.revoked_at);
  if (rev.id && !Number.isNaN(t)) state.revokedAt.set(rev.id, t);
}

// loadList replaces the table with the listing (filtered by the search),
// then applies the events that arrived while it was taken.
async function loadList() {
  const gen = state.gen;
  const pending = [];
  state.listing = pending;
  const all = new Map();
  let after = '';
  let pages = 0;
  try {
    do {
      const q = new URLSearchParams({ limit: String(LIST_PAGE) });
      if (state.filter) q.set(state.filter.field, state.filter.value);
      if (after) q.set('after', after);
      const r = await api('GET', 'revocations?' + q);
      if (gen !== state.gen || state.listing !== pending) return;
      if (signedOut(r)) return;
      if (!r.ok) {
        notice('Listing revocations failed: ' + errorText(r));
        return;
      }
      for (const rev of r.data.revocations) {
        rev.seq = rev.seq || seqOf(rev.id);
        all.set(rev.key, rev);
        noteRevoked(rev);
      }
      after = r.data.next || '';
    } while (after && ++pages < LIST_PAGES);
  } finally {
    if (state.listing === pending) state.listing = null;
  }
  state.truncated = Boolean(after);
  state.revocations = all;
  for (const ev of pending) {
    if (ev.rev) applyRevoke(ev.rev);
    else applyLift(ev.lift.key, ev.seq);
  }
  draw();
  loadEnforcement(newest().slice(0, 50).map((rev) => rev.key));
}

function newest() {
  return [...state.revocations.values()].sort((a, b) => b.seq - a.seq);
}

// ---- enforcement (GET /v1/revocations/{key} → enforcement) ----

async function loadEnforcement(keys) {
  if (!keys.length || state.enforcementSupported === false) return;
  if (state.enforcementSupported === undefined) {
    await fetchEnforcement(keys[0]); // learn whether this broadcaster has it
    keys = keys.slice(1);
  }
  if (state.enforcementSupported) await Promise.all(keys.map(fetchEnforcement));
}

async function fetchEnforcement(key) {
  if (state.enforcementSupported === false) return;
  const gen = state.gen;
  const r = await api('GET', 'revocations/' + encodeURIComponent(key));
  if (gen !== state.gen || !r.ok || !r.data) return;
  const e = r.data.enforcement;
  if (!e) {
    if (state.enforcementSupported === undefined) state.enforcementSupported = false;
    draw();
    return;
  }
  state.enforcementSupported = true;
  state.enforcement.set(key, { seq: r.data.seq || seqOf(r.data.id), e });
  const done = e.agents > 0 && e.applied >= e.agents;
  const t0 = Date.parse(r.data.revoked_at);
  const t1 = Date.parse(e.last_applied_at);
  if (done && !Number.isNaN(t0) && !Number.isNaN(t1)) state.enforceMs.set(key, Math.max(0, t1 - t0));
  draw();
}

// refreshEnforcement asks again about revocations not yet applied
// everywhere.
function refreshEnforcement() {
  if (!state.enforcementSupported) return;
  const keys = [];
  for (const [key, { e }] of state.enforcement) {
    if (!state.revocations.has(key)) state.enforcement.delete(key);
    else if (e.applied < e.agents) keys.push(key);
  }
  keys.slice(0, 20).forEach(fetchEnforcement);
}

// ---- the fleet (GET /v1/agents) ----

async function loadFleet() {
  if (state.fleetSupported === false) return;
  const gen = state.gen;
  const r = await api('GET', 'agents');
  if (gen !== state.gen) return;
  if (r.status === 404) {
    state.fleetSupported = false;
    draw();
    return;
  }
  if (signedOut(r) || !r.ok || !r.data) return;
  state.fleetSupported = true;
  state.agents = r.data.agents || [];
  const n = state.agents.filter(connected).length;
  state.agentSamples.push({ t: Date.now(), n });
  if (state.agentSamples.length > 300) state.agentSamples.shift();
  draw();
}

function connected(a) {
  return a.connected !== false && !a.disconnected_at;
}

// ---- actions ----

async function revoke(ev) {
  ev.preventDefault();
  const form = ev.target;
  const out = form.querySelector('.result');
  const body = {};
  for (const name of ['sub', 'jti', 'kid', 'iss', 'expires_at', 'reason']) {
    const v = form.elements[name].value.trim();
    if (v) body[name] = /^\d+$/.test(v) && name === 'expires_at' ? Number(v) : v;
  }
  const claims = form.elements.claims.value.trim();
  if (claims) {
    try {
      body.claims = JSON.parse(claims);
    } catch {
      result(out, 'error', 'claims: not a JSON object');
      return;
    }
  }
  if (form.elements.ban.checked) body.ban = true;
  result(out, '', 'revoking…');
  const r = await api('POST', 'revocations', body);
  if (r.status === 201) {
    result(out, 'ok', 'revoked: key ' + r.data.key);
    form.reset();
    return;
  }
  refused(r, out);
}

async function lift(ev) {
  ev.preventDefault();
  const form = ev.target;
  const out = form.querySelector('.result');
  const key = form.elements.key.value.trim();
  const q = new URLSearchParams({ reason: form.elements.reason.value.trim() });
  result(out, '', 'lifting…');
  const r = await api('DELETE', 'revocations/' + encodeURIComponent(key) + '?' + q);
  if (r.ok) {
    result(out, 'ok', 'lifted: ' + key);
    form.reset();
    return;
  }
  refused(r, out);
}

function refused(r, out) {
  result(out, 'error', errorText(r));
  if (r.status === 403) becomeReader(errorText(r));
  else signedOut(r);
}

// becomeReader disables what this credential may not do. The API has no
// "who am I": the first refused write tells.
function becomeReader(why) {
  state.reader = true;
  document.body.dataset.role = 'reader';
  for (const fs of document.querySelectorAll('#act fieldset')) fs.disabled = true;
  notice('This credential may look, not act: ' + why);
  draw();
}

function result(el, kind, text) {
  el.textContent = text;
  el.dataset.kind = kind;
}

function pickForLift(key) {
  const form = $('#lift');
  form.elements.key.value = key;
  form.elements.reason.focus();
}

// ---- connection ----

function stop() {
  state.gen++;
  if (state.abort) state.abort.abort();
  state.abort = null;
}

function connect() {
  stop();
  const gen = state.gen;
  Object.assign(state, {
    head: '', lastBeat: 0, reader: false, listing: null, truncated: false,
    revocations: new Map(), enforcement: new Map(), enforceMs: new Map(), revokedAt: new Map(),
    enforcementSupported: undefined, fleetSupported: undefined, agents: [], agentSamples: [],
  });
  delete document.body.dataset.role;
  for (const fs of document.querySelectorAll('#act fieldset')) fs.disabled = false;
  notice('');
  setStatus('connecting', 'connecting');
  draw();
  follow(gen);
  loadFleet();
}

function setStatus(kind, text) {
  const el = $('#status');
  el.dataset.state = kind;
  el.textContent = text;
}

function notice(text) {
  const el = $('#notice');
  el.textContent = text;
  el.hidden = !text;
}

setInterval(() => {
  if (!state.abort) return; // signed out
  if (state.lastBeat && Date.now() - state.lastBeat > STALE_MS) {
    setStatus('stale', 'stale: no heartbeat for ' + Math.round((Date.now() - state.lastBeat) / 1000) + ' s');
  }
  loadFleet();
  refreshEnforcement();
  draw();
}, POLL_MS);

// ---- drawing ----

let drawQueued = false;

function draw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    drawRevocations();
    drawFleet();
    drawCharts();
  });
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.dataset[k.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = d.toDateString() === new Date().toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function timeCell(iso) {
  return el('td', { title: iso || '' }, time(iso));
}

function matchers(rev) {
  const parts = [];
  for (const f of ['sub', 'jti', 'kid', 'iss']) {
    if (rev[f]) parts.push(el('span', { class: 'matcher' }, el('b', null, f), ' ' + rev[f]));
  }
  if (rev.claims) parts.push(el('span', { class: 'matcher' }, el('b', null, 'claims'), ' ' + JSON.stringify(rev.claims)));
  if (rev.issued_before) parts.push(el('span', { class: 'matcher', title: rev.issued_before }, el('b', null, 'iat <'), ' ' + time(rev.issued_before)));
  if (rev.ban) parts.push(el('span', { class: 'badge' }, 'ban'));
  return parts;
}

function agentName(a) {
  if (typeof a === 'string') return a;
  return [a.name, a.instance].filter(Boolean).join('/') || JSON.stringify(a);
}

function enforcementCell(rev) {
  if (state.enforcementSupported === false) return el('td', { class: 'muted', title: 'enforcement needs a newer broadcaster' }, '—');
  const got = state.enforcement.get(rev.key);
  if (!got) return el('td', { class: 'muted' }, '…');
  const e = got.e;
  const done = e.applied >= e.agents;
  const td = el('td', { class: done ? 'ok' : 'warn', 'data-enforcement': e.applied + '/' + e.agents },
    e.applied + ' of ' + e.agents);
  const ms = state.enforceMs.get(rev.key);
  if (done && ms !== undefined) td.append(el('span', { class: 'muted' }, ' in ' + ms + ' ms'));
  const pending = e.pending || [];
  if (pending.length) td.append(el('div', { class: 'pending' }, 'pending: ' + pending.map(agentName).join(', ')));
  return td;
}

function drawRevocations() {
  const rows = newest();
  const tbody = $('#revocations tbody');
  tbody.replaceChildren(...rows.slice(0, SHOWN).map((rev) => el('tr', { 'data-key': rev.key },
    el('td', { title: rev.key }, el('code', null, rev.key.slice(0, 8) + '…')),
    el('td', null, ...matchers(rev)),
    el('td', null, rev.reason || ''),
    el('td', null, rev.actor || ''),
    timeCell(rev.revoked_at),
    rev.expires_at ? timeCell(rev.expires_at) : el('td', { class: 'muted' }, 'until lifted'),
    enforcementCell(rev),
    el('td', null, state.reader ? null : button('Lift…', () => pickForLift(rev.key))),
  )));
  $('#count').textContent = '(' + rows.length + (state.truncated ? '+' : '') + (state.filter ? ' matching ' + state.filter.field + ' = ' + state.filter.value : '') + ')';
  const more = $('#more');
  const hidden = rows.length > SHOWN || state.truncated;
  more.hidden = !hidden;
  more.textContent = hidden ? 'Showing the newest ' + Math.min(rows.length, SHOWN) + '; search to narrow the list.' : '';
}

function button(text, onclick) {
  const b = el('button', { type: 'button' }, text);
  b.addEventListener('click', onclick);
  return b;
}

function drawFleet() {
  const note = $('#fleet-note');
  const table = $('#fleet');
  if (state.fleetSupported === false) {
    note.hidden = false;
    note.textContent = 'The fleet view needs a newer broadcaster: this one does not answer GET /v1/agents.';
    table.hidden = true;
    $('#fleet-count').textContent = '';
    return;
  }
  note.hidden = true;
  table.hidden = false;
  const agents = [...state.agents].sort((a, b) => agentName(a).localeCompare(agentName(b)));
  const live = agents.filter(connected);
  $('#fleet-count').textContent = state.fleetSupported ? '(' + live.length + ' connected, ' + live.filter((a) => a.fresh).length + ' fresh)' : '';
  $('#fleet tbody').replaceChildren(...agents.map((a) => {
    const st = !connected(a) ? 'disconnected' : a.fresh ? 'fresh' : 'stale';
    return el('tr', { 'data-agent': agentName(a), 'data-state': st },
      el('td', null, a.name || ''),
      el('td', null, a.instance || ''),
      el('td', null, a.node || ''),
      timeCell(a.connected_at),
      el('td', null, el('code', null, a.applied || '')),
      el('td', { class: a.lag > 0 ? 'warn' : '' }, a.lag === undefined ? '' : String(a.lag)),
      el('td', null, el('span', { class: 'pill', 'data-state': st === 'fresh' ? 'live' : st === 'stale' ? 'stale' : 'off' }, st)),
    );
  }));
}

// ---- charts (inline SVG) ----

const SVGNS = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 90;
const PAD = 14; // room for the labels

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function chartMessage(target, text) {
  target.replaceChildren(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, text));
}

function axis(top) {
  return [
    svg('line', { x1: 0, y1: H - PAD, x2: W, y2: H - PAD, class: 'axis' }),
    svg('text', { x: 2, y: 10, class: 'label' }, top),
  ];
}

function drawCharts() {
  drawRate();
  drawEnforce();
  drawAgents();
}

function drawRate() {
  const target = $('#chart-rate');
  const minutes = 30;
  const now = Date.now();
  const counts = new Array(minutes).fill(0);
  for (const t of state.revokedAt.values()) {
    const ago = Math.floor((now - t) / 60000);
    if (ago >= 0 && ago < minutes) counts[minutes - 1 - ago]++;
  }
  const top = Math.max(1, ...counts);
  const bw = W / minutes;
  const bars = counts.map((c, i) => {
    const h = (c / top) * (H - PAD - 14);
    const bar = svg('rect', { x: i * bw + 1, y: H - PAD - h, width: bw - 2, height: h, class: 'bar' });
    bar.append(svg('title', {}, c + ' in minute -' + (minutes - 1 - i)));
    return bar;
  });
  target.replaceChildren(...axis(top + '/min'), ...bars,
    svg('text', { x: 0, y: H - 2, class: 'label' }, '-30 min'),
    svg('text', { x: W, y: H - 2, class: 'label', 'text-anchor': 'end' }, 'now'));
  $('#rate-now').textContent = counts[minutes - 1] + ' this minute';
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function drawEnforce() {
  const target = $('#chart-enforce');
  const out = $('#enforce-now');
  if (state.enforcementSupported === false) {
    chartMessage(target, 'needs a newer broadcaster');
    out.textContent = '';
    return;
  }
  const values = [...state.enforceMs.values()];
  if (!values.length) {
    chartMessage(target, 'no revocation applied everywhere yet');
    out.textContent = '';
    return;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  const top = Math.max(1, sorted[sorted.length - 1]);
  const y = (v) => H - PAD - (v / top) * (H - PAD - 14);
  const step = W / Math.max(1, values.length);
  const dots = values.map((v, i) => svg('circle', { cx: (i + 0.5) * step, cy: y(v), r: 2.5, class: 'dot' }));
  target.replaceChildren(...axis(top + ' ms'), ...dots,
    svg('line', { x1: 0, x2: W, y1: y(p50), y2: y(p50), class: 'p50' }),
    svg('line', { x1: 0, x2: W, y1: y(p99), y2: y(p99), class: 'p99' }));
  out.textContent = 'p50 ' + p50 + ' ms · p99 ' + p99 + ' ms (' + values.length + ' revocations)';
}

function drawAgents() {
  const target = $('#chart-agents');
  const out = $('#agents-now');
  if (state.fleetSupported === false) {
    chartMessage(target, 'needs a newer broadcaster');
    out.textContent = '';
    return;
  }
  const s = state.agentSamples;
  if (!s.length) {
    chartMessage(target, 'waiting for the fleet');
    out.textContent = '';
    return;
  }
  const top = Math.max(1, ...s.map((p) => p.n));
  const t0 = s[0].t;
  const span = Math.max(1, s[s.length - 1].t - t0);
  const pts = s.map((p) => ((p.t - t0) / span) * W + ',' + (H - PAD - (p.n / top) * (H - PAD - 14)));
  target.replaceChildren(...axis(String(top)), svg('polyline', { points: pts.join(' '), class: 'line' }));
  out.textContent = s[s.length - 1].n + ' connected now';
}

// ---- wiring ----

$('#login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  state.credential = $('#credential').value.trim();
  if ($('#remember').checked && state.credential) sessionStorage.setItem(STORE, state.credential);
  else sessionStorage.removeItem(STORE);
  $('#credential').value = '';
  connect();
});

$('#logout').addEventListener('click', () => {
  state.credential = '';
  sessionStorage.removeItem(STORE);
  connect();
});

$('#search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const value = form.elements.value.value.trim();
  state.filter = value ? { field: form.elements.field.value, value } : null;
  state.revocations = new Map();
  draw();
  loadList();
});

$('#search').addEventListener('reset', () => {
  state.filter = null;
  loadList();
});

$('#revoke').addEventListener('submit', revoke);
$('#lift').addEventListener('submit', lift);

state.credential = sessionStorage.getItem(STORE) || '';
$('#remember').checked = Boolean(state.credential);
connect();
