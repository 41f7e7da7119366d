// The room page: joins a room over Starling's /rtc websocket (LiveKit's
// signal protocol) with the vendored livekit-client, publishes the camera
// (with simulcast) and the microphone, and shows every participant in a tile.
//
// Address parameters: ?room= and ?token= prefill the form, ?server= the
// server (default: this page's origin); ?camera=0, ?microphone=0 and
// ?simulcast=0 clear those boxes; ?autojoin=1 joins at once; ?debug=1 turns
// on livekit-client's debug log in the console.
//
// Test hooks, on window.starlingRoom (plain data, also handy from the console):
//   room           the livekit-client Room while joined, else null
//   state          idle, connecting, connected, reconnecting, disconnected, failed
//   error          the last error the page showed, or ''
//   speakerEvents  { count, identities }: how many ActiveSpeakersChanged events
//                  named at least one speaker, and every identity seen speaking
//   timings        { joinedMs, cameraMs, microphoneMs }: performance.now() when
//                  the join and each publication completed (ms since the page opened)
//   remoteStats()  resolves to one entry per subscribed remote track:
//                  { identity, kind, source, sid, framesDecoded, frameWidth,
//                    frameHeight, packetsReceived, packetsLost, bytesReceived
//                    (inbound-rtp of the track's receiver), elementWidth, elementHeight (its
//                    video element, CSS pixels), firstFrameMs (performance.now()
//                    when the first frame showed: ms since the page opened) }
//   localStats()   resolves to one entry per published video encoding:
//                  { source, rid, active (sender parameters), bytesSent,
//                    framesEncoded, frameWidth, frameHeight,
//                    qualityLimitationReason (outbound-rtp),
//                    availableOutgoingBitrate (the connection's, bit/s) }

import {
  DisconnectReason,
  Room,
  RoomEvent,
  Track,
  VideoPresets,
  setLogLevel,
} from './vendor/livekit-client/livekit-client.esm.mjs';

const $ = (id) => document.getElementById(id);
const form = $('join-form');
const serverInput = $('server-url');
const roomInput = $('room');
const tokenInput = $('token');
const cameraBox = $('camera');
const micBox = $('microphone');
const simulcastBox = $('simulcast');
const joinButton = $('join');
const statusLine = $('status');
const title = $('title');
const call = $('call');
const tilesBox = $('tiles');
const selfBox = $('self');
const audioBox = $('audio');
const aloneHint = $('alone');
const micButton = $('toggle-mic');
const cameraButton = $('toggle-camera');
const screenButton = $('toggle-screen');
const startAudioButton = $('start-audio');
const leaveButton = $('leave');
const inviteLink = $('invite-link');
const embedSnippet = $('embed-snippet');
const tileTemplate = $('tile-template');

const view = {
  room: null,
  state: 'idle',
  error: '',
  speakerEvents: { count: 0, identities: [] },
  timings: {},
  remoteStats,
  localStats,
};
window.starlingRoom = view;

// tiles maps `${identity}/${source}` to its figure element, shown maps a
// tile to the track in its video element, and firstFrames maps a remote
// track sid to when its first frame showed.
const tiles = new Map();
const shown = new WeakMap();
const firstFrames = new Map();

const joinTimeoutMs = 30000;

const params = new URLSearchParams(location.search);
serverInput.value = params.get('server') || location.origin;
roomInput.value = params.get('room') || roomFromToken(params.get('token')) || '';
tokenInput.value = params.get('token') || '';
for (const box of [cameraBox, micBox, simulcastBox]) {
  if (params.get(box.id) === '0') box.checked = false;
}
if (params.get('debug') === '1') setLogLevel('debug');
updateShare(roomInput.value.trim());

roomInput.addEventListener('input', () => updateShare(roomInput.value.trim()));
tokenInput.addEventListener('input', () => {
  const room = roomFromToken(tokenInput.value.trim());
  if (room && !roomInput.value.trim()) {
    roomInput.value = room;
    updateShare(room);
  }
});
form.addEventListener('submit', (e) => {
  e.preventDefault();
  join();
});
micButton.addEventListener('click', () => toggle('microphone'));
cameraButton.addEventListener('click', () => toggle('camera'));
screenButton.addEventListener('click', () => toggle('screen'));
startAudioButton.addEventListener('click', () => view.room?.startAudio());
leaveButton.addEventListener('click', () => view.room?.disconnect());
$('copy-invite').addEventListener('click', (e) => copyText(inviteLink, e.target));
$('copy-embed').addEventListener('click', (e) => copyText(embedSnippet, e.target));
window.addEventListener('pagehide', () => view.room?.disconnect());

if (params.get('autojoin') === '1' && tokenInput.value) join();

async function join() {
  if (view.room) return;
  const server = serverInput.value.trim();
  const token = tokenInput.value.trim();
  const room = new Room({
    adaptiveStream: true,
    dynacast: true,
    // The classic /rtc path, two peer connections; Starling has no /rtc/v1.
    singlePeerConnection: false,
    // 1280x720 capture, so simulcast publishes q, h and f: 320x180, 640x360, 1280x720.
    videoCaptureDefaults: { resolution: VideoPresets.h720.resolution },
    publishDefaults: {
      simulcast: simulcastBox.checked,
      videoSimulcastLayers: [VideoPresets.h180, VideoPresets.h360],
    },
  });
  view.room = room;
  view.speakerEvents = { count: 0, identities: [] };
  view.timings = {};
  watchRoom(room);
  setFormDisabled(true);
  setState('connecting', `Joining “${roomInput.value.trim()}”…`);
  // livekit-client keeps retrying some failures (a 404 from /rtc/validate)
  // without end; a user wants an answer.
  let timedOut = false;
  const deadline = setTimeout(() => {
    timedOut = true;
    room.disconnect();
  }, joinTimeoutMs);
  try {
    await room.connect(server, token);
  } catch (err) {
    if (view.room !== room) return;
    view.room = null;
    setFormDisabled(false);
    const why = timedOut ? `no answer within ${joinTimeoutMs / 1000} s (${describe(err)})` : describe(err);
    setState('failed', `Could not join: ${why}`, true);
    return;
  } finally {
    clearTimeout(deadline);
  }
  if (view.room !== room) return;
  view.timings.joinedMs = performance.now();
  const name = room.name || roomInput.value.trim();
  title.textContent = `Room “${name}”`;
  updateShare(name);
  form.hidden = true;
  call.hidden = false;
  setState('connected', `In room “${name}” as ${room.localParticipant.identity}`);
  render();
  await publishLocal(room);
}

// publishLocal turns on what the form asked for, keeping the call up when
// the token or the browser refuses a device.
async function publishLocal(room) {
  const lp = room.localParticipant;
  const wanted = [cameraBox.checked && 'camera', micBox.checked && 'microphone'].filter(Boolean);
  if (wanted.length > 0 && lp.permissions && !lp.permissions.canPublish) {
    showError('This token does not allow publishing: you can watch and listen.');
    return;
  }
  for (const what of wanted) {
    try {
      if (what === 'camera') await lp.setCameraEnabled(true);
      else await lp.setMicrophoneEnabled(true);
      view.timings[`${what}Ms`] = performance.now();
    } catch (err) {
      if (view.room === room) showError(`Could not publish the ${what}: ${describe(err)}`);
    }
  }
  render();
}

async function toggle(what) {
  const room = view.room;
  if (!room) return;
  const lp = room.localParticipant;
  try {
    if (what === 'microphone') await lp.setMicrophoneEnabled(!lp.isMicrophoneEnabled);
    else if (what === 'camera') await lp.setCameraEnabled(!lp.isCameraEnabled);
    else await lp.setScreenShareEnabled(!lp.isScreenShareEnabled, { audio: false });
  } catch (err) {
    // Closing the browser's screen picker is not an error worth a red line.
    if (err?.name !== 'NotAllowedError' || what !== 'screen') showError(`Could not switch the ${what}: ${describe(err)}`);
  }
  render();
}

function watchRoom(room) {
  const current = (fn) => (...args) => {
    if (view.room === room) fn(...args);
  };
  room
    .on(RoomEvent.ParticipantConnected, current(render))
    .on(RoomEvent.ParticipantDisconnected, current(render))
    .on(RoomEvent.TrackPublished, current(render))
    .on(RoomEvent.TrackUnpublished, current(render))
    .on(RoomEvent.TrackSubscribed, current(onTrackSubscribed))
    .on(RoomEvent.TrackUnsubscribed, current(onTrackUnsubscribed))
    .on(RoomEvent.TrackMuted, current(render))
    .on(RoomEvent.TrackUnmuted, current(render))
    .on(RoomEvent.LocalTrackPublished, current(render))
    .on(RoomEvent.LocalTrackUnpublished, current(render))
    .on(RoomEvent.ParticipantNameChanged, current(render))
    .on(RoomEvent.ConnectionQualityChanged, current(render))
    .on(RoomEvent.ActiveSpeakersChanged, current(onActiveSpeakers))
    .on(RoomEvent.AudioPlaybackStatusChanged, current(() => (startAudioButton.hidden = room.canPlaybackAudio)))
    .on(RoomEvent.MediaDevicesError, current((err) => showError(`Camera or microphone: ${describe(err)}`)))
    .on(RoomEvent.TrackSubscriptionFailed, current((sid, p, reason) =>
      showError(`Could not subscribe to a track of ${p?.identity ?? 'a participant'}: ${reason ?? sid}`)))
    .on(RoomEvent.Reconnecting, current(() => setState('reconnecting', 'Connection lost; reconnecting…', true)))
    .on(RoomEvent.Reconnected, current(() => setState('connected', 'Reconnected')))
    .on(RoomEvent.Disconnected, current(onDisconnected));
}

function onTrackSubscribed(track) {
  if (track.kind === Track.Kind.Audio) audioBox.append(track.attach());
  render();
}

function onTrackUnsubscribed(track) {
  for (const el of track.detach()) {
    if (el.parentElement === audioBox) el.remove();
  }
  render();
}

function onActiveSpeakers(speakers) {
  if (speakers.length > 0) {
    const seen = view.speakerEvents;
    seen.count++;
    for (const p of speakers) {
      if (!seen.identities.includes(p.identity)) seen.identities.push(p.identity);
    }
  }
  render();
}

function onDisconnected(reason) {
  if (view.state === 'connecting') return; // join() reports a failed join
  const room = view.room;
  view.room = null;
  for (const key of [...tiles.keys()]) removeTile(key);
  for (const el of audioBox.querySelectorAll('audio')) el.remove();
  call.hidden = true;
  form.hidden = false;
  title.textContent = 'Room';
  setFormDisabled(false);
  if (reason === DisconnectReason.CLIENT_INITIATED || reason === undefined) {
    setState('disconnected', `You left “${room?.name ?? ''}”.`);
  } else {
    setState('failed', `Disconnected by the server: ${DisconnectReason[reason] ?? reason}`, true);
  }
}

// render brings the tiles in line with the room: one per participant's
// camera (shown even without video), one per screen share.
function render() {
  const room = view.room;
  if (!room) return;
  const wanted = new Set();
  const place = (p, local) => {
    const sources = [Track.Source.Camera];
    for (const pub of p.trackPublications.values()) {
      if (pub.source === Track.Source.ScreenShare) sources.push(pub.source);
    }
    for (const source of sources) {
      const key = `${p.identity}/${source}`;
      wanted.add(key);
      updateTile(key, p, source, local, local ? selfBox : tilesBox);
    }
  };
  place(room.localParticipant, true);
  for (const p of room.remoteParticipants.values()) place(p, false);
  for (const key of [...tiles.keys()]) {
    if (!wanted.has(key)) removeTile(key);
  }
  aloneHint.hidden = room.remoteParticipants.size > 0;
  startAudioButton.hidden = room.canPlaybackAudio;
  const lp = room.localParticipant;
  pressed(micButton, !lp.isMicrophoneEnabled, lp.isMicrophoneEnabled ? 'Mute' : 'Unmute');
  pressed(cameraButton, !lp.isCameraEnabled, lp.isCameraEnabled ? 'Camera off' : 'Camera on');
  pressed(screenButton, lp.isScreenShareEnabled, lp.isScreenShareEnabled ? 'Stop sharing' : 'Share screen');
}

function updateTile(key, p, source, local, box) {
  let tile = tiles.get(key);
  if (!tile) {
    tile = tileTemplate.content.firstElementChild.cloneNode(true);
    tile.dataset.identity = p.identity;
    tile.dataset.source = source;
    tile.classList.toggle('local', local);
    tiles.set(key, tile);
  }
  if (tile.parentElement !== box) box.append(tile);
  const name = p.name || p.identity;
  const label = (local ? `${name} (you)` : name) + (source === Track.Source.ScreenShare ? ' · screen' : '');
  tile.querySelector('.name').textContent = label;
  tile.dataset.initial = name.slice(0, 1).toUpperCase();
  tile.setAttribute('aria-label', label);

  const mic = p.getTrackPublication(Track.Source.Microphone);
  tile.querySelector('.mic').hidden = source !== Track.Source.Camera || !(mic === undefined || mic.isMuted);
  const quality = tile.querySelector('.quality');
  const q = p.connectionQuality && p.connectionQuality !== 'unknown' ? p.connectionQuality : '';
  quality.dataset.quality = q;
  quality.textContent = q;
  tile.classList.toggle('speaking', p.isSpeaking);

  const pub = p.getTrackPublication(source);
  const track = pub && !pub.isMuted ? pub.track : undefined;
  attachVideo(tile, track, local);
  tile.classList.toggle('no-video', !track);
}

// attachVideo shows track (or nothing) in the tile's video element. For a
// remote track, attaching is what tells livekit-client's adaptive stream
// the size the video is shown at.
function attachVideo(tile, track, local) {
  const video = tile.querySelector('video');
  if (shown.get(tile) === track) return;
  shown.get(tile)?.detach(video);
  shown.set(tile, track);
  if (!track) return;
  track.attach(video);
  if (!local && !firstFrames.has(track.sid) && video.requestVideoFrameCallback) {
    const sid = track.sid;
    video.requestVideoFrameCallback(() => {
      if (!firstFrames.has(sid)) firstFrames.set(sid, performance.now());
    });
  }
}

function removeTile(key) {
  const tile = tiles.get(key);
  tiles.delete(key);
  shown.get(tile)?.detach(tile.querySelector('video'));
  tile.remove();
}

async function remoteStats() {
  const room = view.room;
  if (!room) return [];
  const out = [];
  for (const p of room.remoteParticipants.values()) {
    for (const pub of p.trackPublications.values()) {
      const track = pub.track;
      if (!track || !pub.isSubscribed) continue;
      const entry = {
        identity: p.identity,
        kind: pub.kind,
        source: pub.source,
        sid: pub.trackSid,
        framesDecoded: 0,
        frameWidth: 0,
        frameHeight: 0,
        packetsReceived: 0,
        packetsLost: 0,
        bytesReceived: 0,
        elementWidth: 0,
        elementHeight: 0,
        firstFrameMs: firstFrames.get(pub.trackSid) ?? 0,
      };
      const report = track.receiver ? await track.receiver.getStats() : new Map();
      for (const s of report.values()) {
        if (s.type !== 'inbound-rtp') continue;
        entry.framesDecoded = s.framesDecoded ?? 0;
        entry.frameWidth = s.frameWidth ?? 0;
        entry.frameHeight = s.frameHeight ?? 0;
        entry.packetsReceived = s.packetsReceived ?? 0;
        entry.packetsLost = s.packetsLost ?? 0;
        entry.bytesReceived = s.bytesReceived ?? 0;
      }
      const video = track.attachedElements.find((el) => el instanceof HTMLVideoElement);
      if (video) {
        entry.elementWidth = video.clientWidth;
        entry.elementHeight = video.clientHeight;
      }
      out.push(entry);
    }
  }
  return out;
}

async function localStats() {
  const room = view.room;
  if (!room) return [];
  const out = [];
  for (const pub of room.localParticipant.trackPublications.values()) {
    const sender = pub.track?.sender;
    if (pub.kind !== Track.Kind.Video || !sender) continue;
    const sent = new Map();
    let available = 0;
    for (const s of (await sender.getStats()).values()) {
      if (s.type === 'outbound-rtp') sent.set(s.rid ?? '', s);
      if (s.type === 'candidate-pair' && s.nominated) available = s.availableOutgoingBitrate ?? 0;
    }
    for (const enc of sender.getParameters().encodings) {
      const s = sent.get(enc.rid ?? '') ?? {};
      out.push({
        source: pub.source,
        rid: enc.rid ?? '',
        active: enc.active !== false,
        bytesSent: s.bytesSent ?? 0,
        framesEncoded: s.framesEncoded ?? 0,
        frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0,
        qualityLimitationReason: s.qualityLimitationReason ?? '',
        availableOutgoingBitrate: available,
      });
    }
  }
  return out;
}

// updateShare fills the room link (without the token, which is the
// holder's own) and the <starling-player> embed snippet (web/player/player.js).
function updateShare(room) {
  const link = new URL('/room', location.href);
  if (room) link.searchParams.set('room', room);
  inviteLink.value = link.href;
  const attr = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  embedSnippet.value = `<script src="${attr(new URL('/player.js', location.href).href)}"></script>\n` +
    `<starling-player room="${attr(room)}" autoplay muted controls chat></starling-player>`;
}

async function copyText(field, button) {
  try {
    await navigator.clipboard.writeText(field.value);
    button.textContent = 'Copied';
    setTimeout(() => (button.textContent = 'Copy'), 1500);
  } catch {
    // No clipboard access (plain http on another host): leave it selected.
    field.select();
  }
}

// roomFromToken reads the room grant of an access token, to prefill the
// form; the server checks the token, not this.
function roomFromToken(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).video?.room || '';
  } catch {
    return '';
  }
}

function describe(err) {
  return err?.message || String(err);
}

function pressed(button, on, label) {
  button.setAttribute('aria-pressed', String(on));
  button.textContent = label;
}

function setFormDisabled(disabled) {
  joinButton.disabled = disabled;
  for (const input of [serverInput, roomInput, tokenInput, cameraBox, micBox, simulcastBox]) input.disabled = disabled;
}

function showError(message) {
  view.error = message;
  statusLine.textContent = message;
  statusLine.dataset.kind = 'error';
}

function setState(state, message, isError = false) {
  view.state = state;
  if (isError) view.error = message;
  statusLine.textContent = message;
  statusLine.dataset.kind = isError ? 'error' : '';
}
