// The publish page: form, camera preview, status line and live stats around
// the WHIP client in whip.js.

import { fetchIceServers, onTransportClosed } from './sdp-exchange.js';
import { RateMeter, formatBitrate, formatResolution, outboundVideo, selectedCandidatePair } from './stats.js';
import { openCamera, publish } from './whip.js';

const $ = (id) => document.getElementById(id);
const form = $('publish-form');
const roomInput = $('room');
const urlInput = $('whip-url');
const tokenInput = $('token');
const simulcastBox = $('simulcast');
const audioBox = $('audio');
const startButton = $('start');
const stopButton = $('stop');
const statusLine = $('status');
const preview = $('preview');
const statsBody = $('stats');
const watchLink = $('watch-link');
const copyButton = $('copy');
const embedSnippet = $('embed-snippet');
const copyEmbedButton = $('copy-embed');
const iceList = $('ice-servers');

// The page's state as plain data, for tests and for debugging from the console.
const view = {
  state: 'idle', // idle, starting, connecting, live, stopped, failed
  connectionState: 'new',
  error: '',
  location: '',
  iceServers: [],
  relay: false, // ?relay=1: all media through TURN
  codec: '', // ?codec=: the video codec to send, '' for the browser's default
  candidatePair: null,
  encodings: [],
};
window.starlingPublish = view;

let stream = null;
let session = null;
let statsTimer = 0;
let run = 0; // bumped by every start and stop, so a stale start gives up
let urlEdited = false;

const params = new URLSearchParams(location.search);
roomInput.value = params.get('room') || 'demo';
tokenInput.value = params.get('token') || '';
view.relay = params.get('relay') === '1';
// ?codec=h264 (or vp9, av1) sends that codec; by default the browser's first
// (VP8 in Chromium). H.264 simulcast is served over LL-HLS without transcoding.
view.codec = params.get('codec') || '';
urlInput.value = defaultWhipURL();
updateWatchLink();

roomInput.addEventListener('input', () => {
  if (!urlEdited) urlInput.value = defaultWhipURL();
  updateWatchLink();
});
urlInput.addEventListener('input', () => {
  urlEdited = true;
});
form.addEventListener('submit', (e) => {
  e.preventDefault();
  start();
});
stopButton.addEventListener('click', () => stop());
copyButton.addEventListener('click', copyWatchLink);
copyEmbedButton.addEventListener('click', () => copyText(embedSnippet, copyEmbedButton));
window.addEventListener('pagehide', () => stop());

function defaultWhipURL() {
  return `/whip/${encodeURIComponent(roomInput.value.trim())}`;
}

function updateWatchLink() {
  const url = new URL('/watch', location.href);
  url.searchParams.set('room', roomInput.value.trim());
  watchLink.value = url.href;
  // The <starling-player> snippet (web/player/player.js) for this room.
  const attr = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  embedSnippet.value = `<script src="${attr(new URL('/player.js', location.href).href)}"></script>\n` +
    `<starling-player room="${attr(roomInput.value.trim())}" autoplay muted controls chat></starling-player>`;
}

async function copyText(field, button) {
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = 'Copied';
    setTimeout(() => (button.textContent = 'Copy'), 1500);
  } catch {
    field.select();
  }
}

async function copyWatchLink() {
  try {
    await navigator.clipboard.writeText(watchLink.value);
    copyButton.textContent = 'Copied';
    setTimeout(() => (copyButton.textContent = 'Copy'), 1500);
  } catch {
    // No clipboard access (plain http on another host): leave it selected.
    watchLink.select();
  }
}

async function start() {
  if (stream || session) return;
  const myRun = ++run;
  setRunning(true);
  try {
    setState('starting', 'Opening the camera…');
    stream = await openCamera({ audio: audioBox.checked });
    if (myRun !== run) return;
    preview.srcObject = stream;

    setState('connecting', 'Sending the offer…');
    const url = new URL(urlInput.value.trim(), location.href).href;
    const token = tokenInput.value.trim();
    const iceServers = await fetchIceServers(url, roomInput.value.trim(), token);
    if (myRun !== run) return;
    const s = await publish(url, stream, { token, simulcast: simulcastBox.checked, iceServers, relay: view.relay, codec: view.codec });
    if (myRun !== run) {
      await s.stop();
      return;
    }
    session = s;
    view.location = s.location;
    view.iceServers = s.iceServers;
    showIceServers(s.iceServers);
    s.pc.addEventListener('connectionstatechange', () => onConnectionState(s, s.pc.connectionState));
    onConnectionState(s, s.pc.connectionState);
    onTransportClosed(s.pc, () => fail(s, 'The server ended the session.'));

    const meter = new RateMeter();
    statsTimer = setInterval(() => updateStats(s, meter), 1000);
  } catch (err) {
    if (myRun !== run) return;
    await stop();
    setState('failed', `Could not publish: ${err.message}`, true);
  }
}

async function stop() {
  run++;
  clearInterval(statsTimer);
  const s = session;
  session = null;
  stream?.getTracks().forEach((t) => t.stop());
  stream = null;
  preview.srcObject = null;
  view.encodings = [];
  view.candidatePair = null;
  statsBody.replaceChildren();
  setRunning(false);
  if (s) await s.stop();
  view.connectionState = 'closed';
  setState('stopped', 'Stopped');
}

function onConnectionState(s, cs) {
  if (s !== session) return;
  view.connectionState = cs;
  const room = roomInput.value.trim();
  switch (cs) {
    case 'new':
    case 'connecting':
      setState('connecting', 'Connecting media…');
      break;
    case 'connected':
      setState('live', `Live in room “${room}”`);
      break;
    case 'disconnected':
      setState('connecting', 'Connection interrupted; waiting for it to recover…');
      break;
    case 'failed':
      fail(s, 'The connection failed.');
      break;
  }
}

// fail ends session s, which the server or the network ended.
async function fail(s, message) {
  if (s !== session) return;
  await stop();
  setState('failed', `${message} Press Start to publish again.`, true);
}

async function updateStats(s, meter) {
  if (s !== session) return;
  const encodings = await outboundVideo(s.pc, meter);
  const pair = await selectedCandidatePair(s.pc);
  if (s !== session) return;
  view.encodings = encodings;
  view.candidatePair = pair;
  view.connectionState = s.pc.connectionState;
  statsBody.replaceChildren(
    ...encodings.map((e) =>
      row(
        e.rid || 'single',
        formatResolution(e.frameWidth, e.frameHeight),
        e.framesPerSecond ? `${Math.round(e.framesPerSecond)} fps` : '–',
        formatBitrate(e.bitrate),
      ),
    ),
  );
}

function row(...cells) {
  const tr = document.createElement('tr');
  for (const text of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

function showIceServers(servers) {
  const items = servers.map((s) => {
    const li = document.createElement('li');
    li.textContent = s.username ? `${s.urls} (with credentials)` : s.urls;
    return li;
  });
  if (items.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'none';
    items.push(li);
  }
  iceList.replaceChildren(...items);
}

function setRunning(running) {
  startButton.disabled = running;
  stopButton.disabled = !running;
  for (const input of [roomInput, urlInput, tokenInput, simulcastBox, audioBox]) input.disabled = running;
}

function setState(state, message, isError = false) {
  view.state = state;
  view.error = isError ? message : '';
  statusLine.textContent = message;
  statusLine.dataset.kind = isError ? 'error' : '';
}
