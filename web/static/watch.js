// The watch page: form, video, status line and live stats around the WHEP
// client in whep.js. With ?room= in the address it starts playing at once.

import { fetchIceServers, onTransportClosed } from './sdp-exchange.js';
import {
  RateMeter,
  formatBitrate,
  formatResolution,
  inbound,
  noInbound,
  noServerView,
  selectedCandidatePair,
  serverView,
} from './stats.js';
import { watch } from './whep.js';

const $ = (id) => document.getElementById(id);
const form = $('watch-form');
const roomInput = $('room');
const tokenInput = $('token');
const layerSelect = $('layer');
const playButton = $('play');
const stopButton = $('stop');
const statusLine = $('status');
const video = $('video');
const fields = {
  framesDecoded: $('frames-decoded'),
  resolution: $('resolution'),
  fps: $('fps'),
  bitrate: $('bitrate'),
  jitterBuffer: $('jitter-buffer'),
  packetsLost: $('packets-lost'),
  estimate: $('estimate'),
  serverLayer: $('server-layer'),
  layerSwitches: $('layer-switches'),
  pausedTime: $('paused-time'),
};

const noStats = noInbound;

// The page's state as plain data, for tests and for debugging from the console.
const view = {
  state: 'idle', // idle, connecting, waiting, playing, stopped, failed
  connectionState: 'new',
  error: '',
  relay: false, // ?relay=1: all media through TURN
  candidatePair: null,
  ...noStats,
  ...noServerView,
};
window.starlingStats = view;

const retryMs = 2000;

let session = null;
let aborter = null;
let statsTimer = 0;
let run = 0; // bumped by every play and stop, so a stale play gives up

const params = new URLSearchParams(location.search);
roomInput.value = params.get('room') || 'demo';
tokenInput.value = params.get('token') || '';
layerSelect.value = ['q', 'h', 'f'].includes(params.get('layer')) ? params.get('layer') : '';
view.relay = params.get('relay') === '1';

form.addEventListener('submit', (e) => {
  e.preventDefault();
  play();
});
stopButton.addEventListener('click', () => stop());
window.addEventListener('pagehide', () => stop());

if (params.has('room')) play();

function whepURL() {
  const url = new URL(`/whep/${encodeURIComponent(roomInput.value.trim())}`, location.href);
  if (layerSelect.value) url.searchParams.set('layer', layerSelect.value);
  return url.href;
}

async function play() {
  if (session || aborter) return;
  const myRun = ++run;
  aborter = new AbortController();
  setRunning(true);
  setState('connecting', 'Connecting…');
  const room = roomInput.value.trim();
  try {
    const url = whepURL();
    const token = tokenInput.value.trim();
    const iceServers = await fetchIceServers(url, room, token, aborter.signal);
    const s = await watch(url, {
      token,
      iceServers,
      relay: view.relay,
      signal: aborter.signal,
      retryMs,
      onWaiting: () => setState('waiting', `Waiting for the stream in room “${room}”…`),
    });
    if (myRun !== run) {
      await s.stop();
      return;
    }
    aborter = null;
    session = s;
    video.srcObject = s.stream;
    video.play().catch(() => {}); // autoplay covers it; play() only helps old browsers
    s.pc.addEventListener('connectionstatechange', () => onConnectionState(s, room));
    onConnectionState(s, room);
    onTransportClosed(s.pc, () => resume(s, 'The stream ended; waiting for it to come back…'));
    const meter = new RateMeter();
    statsTimer = setInterval(() => updateStats(s, meter), 1000);
  } catch (err) {
    if (myRun !== run) return;
    await stop();
    setState('failed', `Could not play: ${err.message}`, true);
  }
}

async function stop() {
  run++;
  aborter?.abort();
  aborter = null;
  clearInterval(statsTimer);
  const s = session;
  session = null;
  video.srcObject = null;
  showStats(noStats);
  showServerView(noServerView);
  setRunning(false);
  if (s) await s.stop();
  view.connectionState = 'closed';
  setState('stopped', 'Stopped');
}

function onConnectionState(s, room) {
  if (s !== session) return;
  const cs = s.pc.connectionState;
  view.connectionState = cs;
  switch (cs) {
    case 'new':
    case 'connecting':
      setState('connecting', 'Connecting media…');
      break;
    case 'connected':
      setState('playing', `Playing room “${room}”`);
      break;
    case 'disconnected':
      setState('connecting', 'Connection interrupted; waiting for it to recover…');
      break;
    case 'failed':
      resume(s, 'The connection failed; reconnecting…');
      break;
  }
}

// resume ends session s, which the server or the network ended, and starts
// over: the new offer waits for the stream if it has not come back yet.
function resume(s, message) {
  if (s !== session) return;
  clearInterval(statsTimer);
  session = null;
  video.srcObject = null;
  showStats(noStats);
  showServerView(noServerView);
  s.stop();
  view.connectionState = 'closed';
  setState('waiting', message);
  const myRun = run;
  setTimeout(() => {
    if (myRun === run) play();
  }, retryMs);
}

async function updateStats(s, meter) {
  if (s !== session) return;
  const [st, pair, server] = await Promise.all([
    inbound(s.pc, meter),
    selectedCandidatePair(s.pc),
    serverView(s.location, s.token, AbortSignal.timeout(900)),
  ]);
  if (s !== session) return;
  view.connectionState = s.pc.connectionState;
  view.candidatePair = pair;
  showStats(st);
  showServerView(server);
}

// showServerView shows what the server says it sends: its bandwidth
// estimate for this viewer and the layer it chose.
function showServerView(sv) {
  Object.assign(view, sv);
  const known = sv !== noServerView;
  fields.estimate.textContent = known && sv.estimate ? `${formatBitrate(sv.estimate)} (${sv.estimateSource})` : '–';
  fields.serverLayer.textContent = known && sv.serverLayer ? sv.serverLayer : '–';
  fields.layerSwitches.textContent = known ? String(sv.layerSwitches) : '–';
  fields.pausedTime.textContent = known ? `${sv.pausedSeconds.toFixed(1)} s` : '–';
}

function showStats(st) {
  Object.assign(view, st);
  if (st === noStats) view.candidatePair = null;
  const live = st !== noStats;
  fields.framesDecoded.textContent = live ? String(st.framesDecoded) : '–';
  fields.resolution.textContent = formatResolution(st.frameWidth, st.frameHeight);
  fields.fps.textContent = st.framesPerSecond ? `${Math.round(st.framesPerSecond)} fps` : '–';
  fields.bitrate.textContent = live ? formatBitrate(st.bitrate) : '–';
  fields.jitterBuffer.textContent = live ? `${Math.round(st.jitterBufferDelayMs)} ms` : '–';
  fields.packetsLost.textContent = live ? String(st.packetsLost) : '–';
}

function setRunning(running) {
  playButton.disabled = running;
  stopButton.disabled = !running;
  for (const input of [roomInput, tokenInput, layerSelect]) input.disabled = running;
}

function setState(state, message, isError = false) {
  view.state = state;
  view.error = isError ? message : '';
  statusLine.textContent = message;
  statusLine.dataset.kind = isError ? 'error' : '';
}
