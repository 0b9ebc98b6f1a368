// tapline's live dashboard: the fleet, the alert feed, a device's recent
// windows and the service's rates, from the summaries tapline publishes
// under tapline/live/{app}/ (package sinks/live), received over MQTT over
// WebSockets. Operators send allowed commands as requests the service
// checks against the command policy; the page shows the outcome.
'use strict';
import { MQTT } from './mqtt.js';
import { signIn, refresh, credentials, presign, signedHeaders } from './aws.js';

const $ = (sel) => document.querySelector(sel);
const KEEP = 60;            // windows kept per device and metric
const OFFLINE_MS = 180000;  // event time without a window: offline
// Bounds on what the page holds, however long it stays open: devices
// beyond MAX_DEVICES go, least recently heard from first (never one
// firing or selected); commands and requests beyond theirs, oldest first.
const MAX_DEVICES = 5000, MAX_COMMANDS = 2000, MAX_REQUESTS = 200;
const state = {
  devices: new Map(),       // id -> {id, windows: Map(metric -> [..]), firing: Map(incident -> alert), pending: n, lastEvent, lastSeen}
  alerts: [],               // newest first: {alert, commands: []}
  byIncident: new Map(),
  commands: new Map(),      // command id -> summary
  requests: new Map(),      // request id -> {device, action, outcome}
  stats: null,
  eventTime: 0,
  selected: null,
  metric: 'temp_c',
  queue: [],
  latencies: [],            // ms from processing to visible, window summaries
};
window.__tapline = state;   // for the browser tests

let cfg, client, session, creds;

// fresh returns the dashboard role's credentials, renewed (and the
// operator's id token with them) before they expire.
async function fresh() {
  if (!creds || Date.now() > creds.expires - 60000) {
    session = await refresh(cfg.aws, session);
    creds = await credentials(cfg.aws, session.idToken);
  }
  return creds;
}

async function main() {
  cfg = await (await fetch('config.json')).json();
  state.metric = cfg.metric || state.metric;
  $('#app').textContent = cfg.app;
  let url = cfg.ws || `ws://${location.hostname}:${cfg.ws_port}/`;
  if (cfg.aws) {
    // Served by the stack: sign in, then connect to IoT Core with the
    // dashboard role's credentials, a new presigned URL each time.
    const a = cfg.aws;
    session = await signIn(a);
    await fresh();
    const host = a.iot_endpoint.replace(/^https?:\/\//, '');
    url = async () => presign(`wss://${host}/mqtt`, await fresh(), a.region, 'iotdevicegateway', new Date());
  }
  client = new MQTT(url, cfg.root + '#', onMessage, (s) => {
    $('#conn').textContent = s;
    $('#conn').className = 'conn ' + s;
    document.body.dataset.conn = s;
  });
  for (const a of cfg.actions) {
    const o = document.createElement('option');
    o.value = o.textContent = a;
    $('#action').append(o);
  }
  $('#send').onclick = sendCommand;
  $('#metric').onchange = (e) => { state.metric = e.target.value; render(); };
  $('#close').onclick = () => { state.selected = null; render(); };
}

function onMessage(topic, text) {
  let m;
  try { m = JSON.parse(text); } catch { return; }
  state.queue.push([topic.slice(cfg.root.length), m]);
  if (state.queue.length === 1) requestAnimationFrame(flush);
}

// flush applies what arrived since the last frame and renders once.
function flush() {
  const windows = [];
  for (const [kind, m] of state.queue.splice(0)) {
    if (!m || typeof m !== 'object') continue;
    if (kind === 'windows') {
      for (const [d, metric, s, t1, n, min, mean, max, pt] of m) {
        const w = { d, m: metric, s, t1, n, min, mean, max, pt };
        onWindow(w);
        windows.push(w);
      }
    }
    else if (kind === 'alert') onAlert(m);
    else if (kind === 'command') onCommand(m);
    else if (kind === 'stats') state.stats = m;
  }
  bound();
  render();
  const now = Date.now();
  for (const w of windows) state.latencies.push(now - w.pt);
  if (state.latencies.length > 20000) state.latencies.splice(0, 10000);
}

// bound drops what exceeds the page's bounds.
function bound() {
  if (state.devices.size > MAX_DEVICES) {
    const idle = [...state.devices.values()].filter((d) => !d.firing.size && d.id !== state.selected)
      .sort((a, b) => a.lastSeen - b.lastSeen);
    for (const d of idle.slice(0, state.devices.size - MAX_DEVICES)) state.devices.delete(d.id);
  }
  for (const [map, max] of [[state.commands, MAX_COMMANDS], [state.requests, MAX_REQUESTS]]) {
    for (const k of map.keys()) {
      if (map.size <= max) break;
      map.delete(k); // a Map iterates in insertion order: oldest first
    }
  }
  // An incident's entry lives while the feed shows one of its alerts.
  if (state.byIncident.size > state.alerts.length) {
    const shown = new Set(state.alerts.map((x) => x.entry));
    for (const [k, e] of state.byIncident) if (!shown.has(e)) state.byIncident.delete(k);
  }
}

function device(id) {
  let d = state.devices.get(id);
  if (!d) {
    d = { id, windows: new Map(), firing: new Map(), pending: 0, lastEvent: 0, lastSeen: Date.now() };
    state.devices.set(id, d);
  }
  return d;
}

function onWindow(w) {
  const d = device(w.d);
  let list = d.windows.get(w.m);
  if (!list) { list = []; list.spec = w.s; d.windows.set(w.m, list); }
  if (w.s !== list.spec) return; // one window spec per chart: the first seen
  list.push(w);
  if (list.length > KEEP) list.shift();
  d.lastEvent = Math.max(d.lastEvent, w.t1);
  d.lastSeen = Date.now();
  state.eventTime = Math.max(state.eventTime, w.t1);
}

function onAlert(a) {
  const d = device(a.d);
  if (a.state === 'FIRING') d.firing.set(a.incident, a);
  else d.firing.delete(a.incident);
  let entry = state.byIncident.get(a.incident);
  if (!entry || a.state === 'FIRING') {
    entry = { incident: a.incident, commands: [] };
    state.byIncident.set(a.incident, entry);
  }
  state.alerts.unshift({ alert: a, entry });
  if (state.alerts.length > 200) state.alerts.pop();
}

function onCommand(c) {
  const prev = state.commands.get(c.id);
  const d = device(c.d);
  if (c.outcome === 'sent' && (!prev || prev.outcome !== 'sent')) d.pending++;
  if (prev && prev.outcome === 'sent' && c.outcome !== 'sent') d.pending = Math.max(0, d.pending - 1);
  state.commands.set(c.id, c);
  const entry = state.byIncident.get(c.cause);
  if (entry && !entry.commands.includes(c.id)) entry.commands.push(c.id);
  if (c.request && state.requests.has(c.request)) state.requests.get(c.request).outcome = c.outcome;
}

function status(d) {
  if (d.firing.size) return 'firing';
  if (d.pending) return 'pending';
  if (state.eventTime - d.lastEvent > OFFLINE_MS) return 'offline';
  return 'ok';
}

function sendCommand() {
  const dev = state.selected, action = $('#action').value;
  if (!dev || !action) return;
  const id = 'req-' + Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
  state.requests.set(id, { device: dev, action, outcome: 'requested' });
  if (cfg.aws) {
    commandAWS(id, dev, action);
  } else {
    const ok = client.publish(cfg.root + 'command-request', JSON.stringify({ request_id: id, device_id: dev, action, operator: 'dashboard' }));
    if (!ok) state.requests.get(id).outcome = 'not connected';
  }
  render();
}

// commandAWS asks the commander (its IAM-authenticated URL) for the
// command: the same policy decides, and its answer is the outcome.
async function commandAWS(id, device, action) {
  const r = state.requests.get(id);
  try {
    const body = JSON.stringify({ device_id: device, action, request_id: id });
    const headers = await signedHeaders(cfg.aws.commander_url, body, await fresh(), cfg.aws.region, 'lambda', new Date());
    const res = await fetch(cfg.aws.commander_url, { method: 'POST', headers, body });
    const out = await res.json().catch(() => ({}));
    const first = (out.results || [])[0] || {};
    r.outcome = res.ok ? (first.status === 'refused' ? 'refused: ' + first.error : first.status || 'sent') : `failed: ${res.status}`;
  } catch (e) {
    r.outcome = 'failed: ' + e.message;
  }
  render();
}

// ---- rendering -----------------------------------------------------------

const svgNS = 'http://www.w3.org/2000/svg';
function el(tag, attrs = {}, text) {
  const e = tag === 'svg' || ['path', 'polyline', 'polygon', 'circle', 'line', 'text', 'g'].includes(tag)
    ? document.createElementNS(svgNS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function time(ms) { return new Date(ms).toISOString().slice(11, 19); }
function num(v) { return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2); }

function sparkline(list) {
  const svg = el('svg', { class: 'spark', viewBox: '0 0 100 20', preserveAspectRatio: 'none' });
  if (!list || list.length < 2) return svg;
  const lo = Math.min(...list.map((w) => w.mean)), hi = Math.max(...list.map((w) => w.mean));
  const pts = list.map((w, i) => `${(i / (list.length - 1)) * 100},${18 - ((w.mean - lo) / (hi - lo || 1)) * 16}`);
  svg.append(el('polyline', { points: pts.join(' ') }));
  return svg;
}

function chart(metric, list) {
  const W = 600, H = 140, P = 28;
  const svg = el('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, 'data-metric': metric });
  if (!list.length) return svg;
  const t0 = list[0].t1, t1 = list[list.length - 1].t1;
  const lo = Math.min(...list.map((w) => w.min)), hi = Math.max(...list.map((w) => w.max));
  const x = (t) => P + ((t - t0) / (t1 - t0 || 1)) * (W - 2 * P);
  const y = (v) => H - P / 2 - ((v - lo) / (hi - lo || 1)) * (H - P);
  const mid = (w) => w.t1; // plotted at the window's end
  const band = list.map((w) => `${x(mid(w))},${y(w.max)}`).concat(list.slice().reverse().map((w) => `${x(mid(w))},${y(w.min)}`));
  svg.append(el('polygon', { class: 'band', points: band.join(' ') }));
  svg.append(el('polyline', { class: 'mean', points: list.map((w) => `${x(mid(w))},${y(w.mean)}`).join(' ') }));
  for (const w of list) svg.append(el('circle', { class: 'point', cx: x(mid(w)), cy: y(w.mean), r: 2 }));
  svg.append(el('text', { x: 2, y: 12, class: 'axis' }, `${metric}  ${num(hi)}`));
  svg.append(el('text', { x: 2, y: H - 4, class: 'axis' }, num(lo)));
  svg.append(el('text', { x: W - P, y: H - 4, class: 'axis', 'text-anchor': 'end' }, time(t1)));
  return svg;
}

function render() {
  renderStats();
  renderFleet();
  renderAlerts();
  renderDevice();
}

function renderStats() {
  const s = state.stats;
  if (!s) return;
  $('#rps').textContent = Math.round(s.rps).toLocaleString();
  $('#late').textContent = s.late.toFixed(1);
  $('#dead').textContent = s.dead.toFixed(1);
  $('#firing').textContent = s.firing;
  $('#lag').textContent = Object.entries(s.lag || {}).map(([k, v]) => `${k} ${(v / 1000).toFixed(0)} s`).join(', ');
  $('#et').textContent = s.et ? new Date(s.et).toISOString().replace('T', ' ').slice(0, 19) : '';
}

function renderFleet() {
  const metrics = new Set();
  for (const d of state.devices.values()) for (const m of d.windows.keys()) metrics.add(m);
  const sel = $('#metric');
  if (sel.options.length !== metrics.size) {
    sel.replaceChildren(...[...metrics].sort().map((m) => el('option', { value: m }, m)));
    sel.value = state.metric;
  }
  const rows = [...state.devices.values()].sort((a, b) => a.id.localeCompare(b.id)).map((d) => {
    const st = status(d);
    const tr = el('tr', { 'data-device': d.id, 'data-state': st, class: st + (d.id === state.selected ? ' selected' : '') });
    tr.append(el('td', {}, d.id), el('td', { class: 'state' }, st),
      el('td', {}, d.lastEvent ? time(d.lastEvent) : ''), el('td', {}));
    tr.lastChild.append(sparkline(d.windows.get(state.metric)));
    tr.onclick = () => { state.selected = d.id; render(); };
    return tr;
  });
  $('#fleet tbody').replaceChildren(...rows);
  $('#count').textContent = `${state.devices.size} devices`;
}

function commandText(ids) {
  return ids.map((id) => { const c = state.commands.get(id); return c ? `${c.action}: ${c.outcome}` : ''; }).join('; ');
}

function renderAlerts() {
  const rows = state.alerts.slice(0, 50).map(({ alert: a, entry }) => {
    const tr = el('tr', { class: a.state.toLowerCase(), 'data-rule': a.rule, 'data-device': a.d, 'data-state': a.state });
    tr.append(el('td', {}, time(a.at)), el('td', { class: 'state' }, a.state), el('td', {}, a.severity),
      el('td', {}, a.rule), el('td', {}, a.d), el('td', { class: 'msg' }, a.message), el('td', { class: 'cmd' }, commandText(entry.commands)));
    return tr;
  });
  $('#alerts tbody').replaceChildren(...rows);
}

function renderDevice() {
  const panel = $('#device');
  const d = state.selected && state.devices.get(state.selected);
  panel.hidden = !d;
  if (!d) return;
  $('#device-id').textContent = d.id;
  $('#device-state').textContent = status(d);
  $('#charts').replaceChildren(...[...d.windows.entries()].sort().map(([m, list]) => chart(m, list)));
  const alerts = state.alerts.filter((x) => x.alert.d === d.id).slice(0, 10);
  $('#device-alerts').replaceChildren(...alerts.map(({ alert: a }) => el('li', {}, `${time(a.at)} ${a.state} ${a.rule}: ${a.message}`)));
  const cmds = [...state.commands.values()].filter((c) => c.d === d.id).slice(-10).reverse();
  $('#device-commands').replaceChildren(...cmds.map((c) => el('li', { 'data-outcome': c.outcome }, `${c.action} (${c.cause}): ${c.outcome}`)));
  const reqs = [...state.requests.entries()].filter(([, r]) => r.device === d.id).slice(-5).reverse();
  $('#requests').replaceChildren(...reqs.map(([id, r]) => el('li', { 'data-request': id, 'data-outcome': r.outcome }, `${r.action}: ${r.outcome}`)));
}

main();
