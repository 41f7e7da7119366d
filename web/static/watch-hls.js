// The HLS watch page: plays a publisher's LL-HLS ladder with hls.js and
// shows what the player does: the rendition on screen, its switches, stalls,
// the bandwidth estimate and the glass-to-glass latency. With ?room= in the
// address it starts playing at once, and waits for the stream if it is not
// live yet.

import Hls from './vendor/hls.js/hls.min.mjs';
import { formatBitrate, formatResolution } from './stats.js';

const $ = (id) => document.getElementById(id);
const form = $('watch-form');
const roomInput = $('room');
const participantInput = $('participant');
const playButton = $('play');
const stopButton = $('stop');
const statusLine = $('status');
const video = $('video');
const fields = {
  level: $('level'),
  levels: $('levels'),
  levelSwitches: $('level-switches'),
  bandwidth: $('bandwidth'),
  framesDecoded: $('frames-decoded'),
  stalls: $('stalls'),
  stalledTime: $('stalled-time'),
  latency: $('latency'),
  latencyMedian: $('latency-median'),
  buffer: $('buffer'),
};

const retryMs = 1000;
const sampleMs = 500;
const keptSamples = 240; // two minutes of latency samples

// The page's state as plain data, for tests and for debugging from the console.
const view = {
  state: 'idle', // idle, waiting, loading, playing, ended, stopped, failed
  error: '',
  url: '', // the multivariant playlist, after the room's redirect
  level: 0, // height of the rendition on screen
  levels: [], // { width, height, bitrate } of each rendition, as hls.js orders them
  levelSwitches: 0,
  bandwidthEstimate: 0, // bit/s, hls.js's estimate
  framesDecoded: 0,
  droppedFrames: 0,
  videoWidth: 0,
  videoHeight: 0,
  // Stalls after playback started: `waiting` events outside seeks, plus
  // hls.js's BUFFER_STALLED_ERROR; stalledMs is the time spent waiting.
  stalls: 0,
  waitingStalls: 0,
  bufferStalls: 0,
  stalledMs: 0,
  seeks: 0, // seeks after playback started (hls.js jumping to the live edge or over a gap)
  // Seconds from the PROGRAM-DATE-TIME of the frame on screen to now, and
  // the last samples of it (one every sampleMs while playing);
  // latencySampleCount counts every sample ever taken.
  latency: 0,
  latencySamples: [],
  latencySampleCount: 0,
  hlsLatency: 0, // hls.js's own estimate: distance to the live edge
  targetLatency: 0, // where hls.js means to stay from the live edge
  buffered: 0, // seconds buffered ahead of the playhead
};
window.starlingHLS = view;

let player = null; // the hls.js instance of the current run
let aborter = null;
let statsTimer = 0;
let run = 0; // bumped by every play and stop, so a stale run gives up
let playingStarted = false;
let stallSince = 0;
// Once a playlist ends (EXT-X-ENDLIST), a playhead that stops moving is the
// end of the stream, whether or not the media element fires `ended`.
let endlist = false;
let stillSince = 0;
let lastTime = -1;

const params = new URLSearchParams(location.search);
roomInput.value = params.get('room') || 'demo';
participantInput.value = params.get('participant') || '';

form.addEventListener('submit', (e) => {
  e.preventDefault();
  play();
});
stopButton.addEventListener('click', () => stop());
window.addEventListener('pagehide', () => stop());

video.addEventListener('playing', () => {
  if (!player) return;
  if (!playingStarted) joinLive(player);
  playingStarted = true;
  endStall();
  setState('playing', `Playing ${describe()}`);
});
video.addEventListener('waiting', () => {
  if (!player || !playingStarted || endlist || video.seeking || stallSince) return;
  stallSince = performance.now();
  view.waitingStalls++;
});
video.addEventListener('seeking', () => {
  if (player && playingStarted) view.seeks++;
});
video.addEventListener('ended', () => {
  if (player) restart('ended', 'The stream ended; waiting for it to come back…');
});

if (!Hls.isSupported()) {
  setState('failed', 'This browser cannot play HLS with hls.js (no Media Source Extensions).', true);
  playButton.disabled = true;
} else if (params.has('room')) {
  play();
}

function playlistURL() {
  const room = encodeURIComponent(roomInput.value.trim());
  const participant = participantInput.value.trim();
  const path = participant ? `/hls/${room}/${encodeURIComponent(participant)}/index.m3u8` : `/hls/${room}/index.m3u8`;
  return new URL(path, location.href).href;
}

function describe() {
  const participant = participantInput.value.trim();
  const room = `room “${roomInput.value.trim()}”`;
  return participant ? `“${participant}” in ${room}` : room;
}

async function play() {
  if (player || aborter) return;
  const myRun = ++run;
  aborter = new AbortController();
  setRunning(true);
  setState('waiting', `Waiting for the stream of ${describe()}…`);
  try {
    const url = await awaitPlaylist(playlistURL(), aborter.signal);
    if (myRun !== run) return;
    aborter = null;
    startPlayer(url);
    statsTimer = setInterval(updateStats, sampleMs);
  } catch (err) {
    if (myRun !== run) return;
    aborter = null;
    stop();
    setState('failed', `Could not play: ${err.message}`, true);
  }
}

// awaitPlaylist asks for the multivariant playlist until the server has it
// (404: nobody publishes yet; 503: the ladder is starting) and returns its
// address after any redirect to the room's publisher.
async function awaitPlaylist(url, signal) {
  for (;;) {
    let wait = retryMs;
    try {
      const res = await fetch(url, { cache: 'no-store', signal });
      if (res.ok) {
        await res.text();
        return res.url;
      }
      const body = await res.json().catch(() => ({}));
      const retryAfter = Number(res.headers.get('Retry-After'));
      if (retryAfter > 0) wait = Math.min(retryAfter, 30) * 1000;
      setState('waiting', `Waiting for the stream of ${describe()}: ${body.error || res.status}`);
    } catch (err) {
      if (signal.aborted) throw err;
      setState('waiting', `Waiting for the server: ${err.message}`);
    }
    await sleep(wait, signal);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

// joinLive moves the playhead once, when playback first starts, to hls.js's
// live sync position if it is further behind than hls.js's target: hls.js
// loads from the INDEPENDENT part before the target and, without catch-up
// (maxLiveSyncPlaybackRate 1), keeps whatever distance it started at, which
// parts that arrive in a burst at a ladder's start can stretch by a second
// or more. The seek lands in what is buffered.
function joinLive(hls) {
  const target = hls.liveSyncPosition;
  if (target && hls.latency > hls.targetLatency + 0.25 && target > video.currentTime) video.currentTime = target;
}

// hlsConfig is hls.js in low-latency mode with a 1 s target (liveSyncDuration;
// PART-HOLD-BACK's 0.75 s stalled twice a minute on this 2-core machine) and
// no playback-rate catch-up (it stalled on busy CI machines): joinLive puts
// the playhead on target once, and it stays there (docs/benchmarks.md).
const hlsConfig = { lowLatencyMode: true, backBufferLength: 30, liveSyncDuration: 1.0 };

function startPlayer(url) {
  const hls = new Hls(hlsConfig);
  player = hls;
  playingStarted = false;
  stallSince = 0;
  endlist = false;
  stillSince = 0;
  lastTime = -1;
  Object.assign(view, {
    url,
    level: 0,
    levels: [],
    levelSwitches: 0,
    stalls: 0,
    waitingStalls: 0,
    bufferStalls: 0,
    stalledMs: 0,
    seeks: 0,
    latency: 0,
    latencySamples: [],
    latencySampleCount: 0,
  });
  setState('loading', `Loading ${describe()}…`);
  let switched = false;
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
    view.levels = data.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate }));
    fields.levels.textContent = view.levels.map((l) => `${l.height}p`).join(', ') || '–';
  });
  hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
    if (hls !== player || data.details.live) return;
    endlist = true;
    // A playlist that ended before playback started is what is left of
    // a past stream.
    if (!playingStarted) restart('ended', 'The stream ended; waiting for it to come back…');
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
    if (switched) view.levelSwitches++;
    switched = true;
    view.level = hls.levels[data.level]?.height ?? 0;
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (hls !== player) return;
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR && playingStarted && !endlist) view.bufferStalls++;
    if (!data.fatal) return;
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    restart('waiting', `Playback failed (${data.details}); trying again…`);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
}

// restart drops the player and waits for the stream again.
function restart(state, message) {
  const myRun = run;
  teardown();
  setState(state, message);
  setTimeout(() => {
    if (myRun === run) {
      setRunning(false);
      play();
    }
  }, retryMs);
}

function teardown() {
  clearInterval(statsTimer);
  endStall();
  const hls = player;
  player = null;
  hls?.destroy();
  video.removeAttribute('src');
  video.load();
}

function stop() {
  run++;
  aborter?.abort();
  aborter = null;
  teardown();
  setRunning(false);
  setState('stopped', 'Stopped');
}

function endStall() {
  if (!stallSince) return;
  view.stalledMs += performance.now() - stallSince;
  stallSince = 0;
}

function updateStats() {
  const hls = player;
  if (!hls) return;
  const q = video.getVideoPlaybackQuality();
  view.framesDecoded = q.totalVideoFrames;
  view.droppedFrames = q.droppedVideoFrames;
  view.videoWidth = video.videoWidth;
  view.videoHeight = video.videoHeight;
  view.bandwidthEstimate = Math.round(hls.bandwidthEstimate) || 0;
  view.hlsLatency = hls.latency;
  view.targetLatency = hls.targetLatency ?? 0;
  view.stalls = view.waitingStalls + view.bufferStalls;
  const stalledNow = stallSince ? performance.now() - stallSince : 0;
  view.buffered = bufferedAhead();
  const date = hls.playingDate;
  if (date && playingStarted && !video.paused && !stalledNow) {
    view.latency = (Date.now() - date.getTime()) / 1000;
    view.latencySamples.push(view.latency);
    if (view.latencySamples.length > keptSamples) view.latencySamples.shift();
    view.latencySampleCount++;
  }
  showStats(view.stalledMs + stalledNow);
  if (endlist && playingStarted) checkEnd();
}

// checkEnd restarts once the playhead of an ended stream stood still for a
// second.
function checkEnd() {
  const now = performance.now();
  if (video.currentTime !== lastTime) {
    lastTime = video.currentTime;
    stillSince = now;
  } else if (now - stillSince >= 1000) {
    restart('ended', 'The stream ended; waiting for it to come back…');
  }
}

function bufferedAhead() {
  const b = video.buffered;
  for (let i = 0; i < b.length; i++) {
    if (b.start(i) <= video.currentTime && video.currentTime <= b.end(i)) return b.end(i) - video.currentTime;
  }
  return 0;
}

function showStats(stalledMs) {
  const lvl = view.levels.find((l) => l.height === view.level);
  fields.level.textContent = view.level
    ? `${view.level}p, ${formatResolution(view.videoWidth, view.videoHeight)}${lvl ? `, ${formatBitrate(lvl.bitrate)}` : ''}`
    : '–';
  fields.levelSwitches.textContent = String(view.levelSwitches);
  fields.bandwidth.textContent = view.bandwidthEstimate ? formatBitrate(view.bandwidthEstimate) : '–';
  fields.framesDecoded.textContent = String(view.framesDecoded);
  fields.stalls.textContent = String(view.stalls);
  fields.stalledTime.textContent = `${(stalledMs / 1000).toFixed(1)} s`;
  fields.latency.textContent = view.latencySampleCount ? `${view.latency.toFixed(2)} s` : '–';
  const recent = view.latencySamples.slice(-Math.round(60000 / sampleMs));
  fields.latencyMedian.textContent = recent.length ? `${median(recent).toFixed(2)} s` : '–';
  fields.buffer.textContent = `${view.buffered.toFixed(2)} s`;
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function setRunning(running) {
  playButton.disabled = running;
  stopButton.disabled = !running;
  for (const input of [roomInput, participantInput]) input.disabled = running;
}

function setState(state, message, isError = false) {
  view.state = state;
  view.error = isError ? message : '';
  statusLine.textContent = message;
  statusLine.dataset.kind = isError ? 'error' : '';
}
