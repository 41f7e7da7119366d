// <starling-player>: a live stream in any page with one script tag.
//
//   <script src="https://host/player.js"></script>
//   <starling-player room="demo" autoplay muted controls chat></starling-player>
//
// It plays over WebRTC (WHEP) and falls back to LL-HLS (hls.js, loaded only
// then) when WebRTC does not connect within connect-timeout or the server
// refuses more WebRTC viewers; it shows live chat and polls from the chat
// websocket. Everything lives in an open shadow root: no global CSS, no
// framework. A classic script, so a plain <script src> works from any origin.
(() => {
  'use strict';
  if (customElements.get('starling-player')) return;

  // The server defaults to where this script came from.
  const scriptOrigin = document.currentScript ? new URL(document.currentScript.src).origin : location.origin;
  const HLS_MODULE = '/player/hls.min.mjs';
  const STATS_MS = 1000;
  const MAX_BACKOFF_MS = 30000;
  const LAYERS = [['f', 'High'], ['h', 'Medium'], ['q', 'Low']];

  const CSS = `
:host{display:block;position:relative;font:14px/1.4 system-ui,sans-serif;color:#eee;background:#000;
  contain:content;aspect-ratio:16/9;min-height:180px}
:host([chat]){aspect-ratio:auto}
*{box-sizing:border-box}
.wrap{display:flex;width:100%;height:100%;min-height:inherit}
.stage{position:relative;flex:1;min-width:0;background:#000;outline:none}
.stage:focus-visible{box-shadow:inset 0 0 0 3px #4af}
video{display:block;width:100%;height:100%;object-fit:contain;background:#000}
.badges{position:absolute;top:8px;left:8px;display:flex;gap:6px;pointer-events:none}
.badge{padding:2px 8px;border-radius:4px;background:rgba(0,0,0,.6);font-size:12px;font-weight:600}
.badge.live{background:#d22}
.badge[hidden]{display:none}
.msg{position:absolute;inset:auto 0 50% 0;text-align:center;text-shadow:0 1px 2px #000;pointer-events:none}
.big{position:absolute;inset:0;margin:auto;width:72px;height:72px;border-radius:50%;border:0;
  background:rgba(0,0,0,.6);color:#fff;font-size:32px;cursor:pointer}
.bar{position:absolute;left:0;right:0;bottom:0;display:flex;gap:4px;align-items:center;padding:6px;
  background:linear-gradient(transparent,rgba(0,0,0,.7))}
.bar .grow{flex:1}
button,select,input{font:inherit;color:inherit}
svg{width:18px;height:18px;vertical-align:middle;fill:none;stroke:currentColor;stroke-width:2;stroke-linejoin:round}
.badge svg{width:14px;height:14px;margin-right:3px}
.log .note{color:#999}
.bar button,.bar select{background:rgba(255,255,255,.12);border:0;border-radius:4px;padding:4px 8px;cursor:pointer}
.bar select option{color:#000}
button:focus-visible,select:focus-visible,input:focus-visible{outline:2px solid #4af;outline-offset:1px}
.chat{width:300px;max-width:40%;display:flex;flex-direction:column;background:#15171c;border-left:1px solid #333}
.chat[hidden],[hidden]{display:none}
.log{flex:1;overflow-y:auto;margin:0;padding:8px;list-style:none;word-wrap:break-word}
.log li{margin:0 0 4px}
.log .who{font-weight:600;color:#8cf;margin-right:6px}
.poll{margin:8px;padding:8px;border-radius:6px;background:#232733}
.poll h3{margin:0 0 6px;font-size:14px}
.poll button{display:flex;width:100%;justify-content:space-between;margin:4px 0;padding:6px 8px;
  border:1px solid #445;border-radius:4px;background:#1b1e27;cursor:pointer}
.poll button[aria-pressed=true]{border-color:#4af}
.poll button:disabled{cursor:default;opacity:.8}
form{display:flex;gap:4px;padding:8px;border-top:1px solid #333}
form input{flex:1;min-width:0;padding:4px 6px;background:#000;border:1px solid #444;border-radius:4px}
form button{padding:4px 8px;background:#2a5;border:0;border-radius:4px}
`;

  // h makes an element; children that are strings become text nodes, never HTML.
  function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v);
    }
    el.append(...children.filter((c) => c != null));
    return el;
  }

  // icon draws a 20px SVG icon from one path: no icon font, no emoji that
  // a host without emoji fonts shows as boxes.
  const ICONS = {
    muted: 'M3 8h4l5-4v16l-5-4H3zM15 8l6 8M21 8l-6 8',
    sound: 'M3 8h4l5-4v16l-5-4H3zM15 9a4 4 0 0 1 0 6M17 6a8 8 0 0 1 0 12',
    pip: 'M2 4h20v16H2zM12 12h8v6h-8z',
    full: 'M3 9V3h6M15 3h6v6M21 15v6h-6M9 21H3v-6',
    eye: 'M1 12s4-7 11-7 11 7 11 7-4 7-11 7S1 12 1 12zM12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z',
  };
  function icon(name) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', ICONS[name]);
    svg.append(path);
    return svg;
  }

  const sleep = (ms, signal) =>
    new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => {
        clearTimeout(t);
        reject(signal.reason);
      }, { once: true });
    });

  const backoff = (attempt) => Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempt) * (0.8 + Math.random() * 0.4);

  class HTTPError extends Error {
    constructor(status, msg) {
      super(msg);
      this.status = status;
    }
  }

  async function errorOf(res) {
    const body = await res.json().catch(() => ({}));
    return new HTTPError(res.status, `${res.status}: ${body.error || res.statusText}`);
  }

  class StarlingPlayer extends HTMLElement {
    static get observedAttributes() {
      return ['room', 'server', 'token', 'mode', 'muted', 'controls', 'chat', 'poster'];
    }

    constructor() {
      super();
      // What the widget is doing, as plain data: for the host page and tests.
      this.stats = {
        state: 'idle', // idle, connecting, offline, playing, paused, failed
        mode: '', // webrtc or hls, once chosen
        live: false,
        framesDecoded: 0,
        latency: 0, // seconds; see updateStats
        viewers: 0,
        quality: 'auto',
        qualities: [],
        fallbackReason: '',
        error: '',
      };
      this._run = 0;
      this._quality = 'auto';
      this._build();
    }

    // ---- attributes ----
    get room() { return this.getAttribute('room') || ''; }
    get server() { return this.getAttribute('server') || scriptOrigin; }
    get token() { return this.getAttribute('token') || ''; }
    get mode() {
      const m = this.getAttribute('mode');
      return m === 'webrtc' || m === 'hls' ? m : 'auto';
    }
    get connectTimeout() { return Number(this.getAttribute('connect-timeout')) || 5000; }
    url(path) { return new URL(path, this.server); }

    connectedCallback() {
      this._sync();
      if (this.hasAttribute('chat')) this._startChat();
      if (this.hasAttribute('autoplay')) this.play();
    }

    disconnectedCallback() {
      this._stopMedia();
      this._stopChat();
    }

    attributeChangedCallback(name) {
      if (!this._ui) return;
      this._sync();
      if (!this.isConnected) return;
      if (name === 'chat') this.hasAttribute('chat') ? this._startChat() : this._stopChat();
      if (['room', 'server', 'token'].includes(name) && this.stats.state !== 'idle') {
        this._stopChat();
        if (this.hasAttribute('chat')) this._startChat();
        this._restart();
      }
      if (name === 'mode' && this.stats.state !== 'idle') this._restart();
    }

    _sync() {
      const u = this._ui;
      u.video.muted = this.hasAttribute('muted');
      u.video.poster = this.getAttribute('poster') || '';
      u.bar.hidden = !this.hasAttribute('controls');
      u.chat.hidden = !this.hasAttribute('chat');
      u.pip.hidden = !document.pictureInPictureEnabled;
      this._showMute();
    }

    // ---- API ----
    /** Starts (or resumes) playing. */
    play() {
      if (this.stats.state === 'idle' || this.stats.state === 'failed') this._restart();
      else {
        if (this.stats.mode === 'hls' && this._hls?.liveSyncPosition) this._ui.video.currentTime = this._hls.liveSyncPosition;
        this._ui.video.play().catch(() => {});
      }
    }

    /** Pauses the picture; the connection stays up, so play() is instant. */
    pause() {
      this._ui.video.pause();
    }

    /**
     * Picks a quality: 'auto', a WebRTC simulcast layer ('f', 'h', 'q') or an
     * HLS rendition by height ('720p'). Values are those in stats.qualities.
     */
    setQuality(q) {
      q = String(q);
      if (q !== 'auto' && !this.stats.qualities.some((o) => o.value === q)) throw new RangeError(`no quality ${q}`);
      this._quality = q;
      this.stats.quality = q;
      this._ui.quality.value = q;
      if (this.stats.mode === 'webrtc') {
        this._restart('webrtc'); // the layer cap is part of the WHEP request
      } else if (this._hls) {
        const i = this._hls.levels.findIndex((l) => `${l.height}p` === q);
        this._hls.currentLevel = i; // -1: auto
      }
    }

    // ---- UI ----
    _build() {
      const root = this.attachShadow({ mode: 'open' });
      const u = (this._ui = {});
      u.video = h('video', { playsinline: '', part: 'video' });
      u.video.playsInline = true;
      u.live = h('span', { class: 'badge', part: 'state' }, 'OFFLINE');
      u.viewers = h('span', { class: 'badge', title: 'viewers', hidden: true });
      u.latency = h('span', { class: 'badge', title: 'latency', hidden: true });
      u.modeBadge = h('span', { class: 'badge', hidden: true });
      u.msg = h('div', { class: 'msg', role: 'status', 'aria-live': 'polite' });
      u.big = h('button', { class: 'big', 'aria-label': 'Play', onclick: () => this.play() }, '▶');
      u.playBtn = h('button', { 'aria-label': 'Pause', onclick: () => this._togglePlay() }, '❚❚');
      u.muteBtn = h('button', { 'aria-label': 'Unmute', onclick: () => this._toggleMute() }, icon('muted'));
      u.quality = h('select', { 'aria-label': 'Quality', onchange: (e) => this.setQuality(e.target.value) });
      u.pip = h('button', { 'aria-label': 'Picture in picture', onclick: () => this._togglePiP() }, icon('pip'));
      u.full = h('button', { 'aria-label': 'Fullscreen', onclick: () => this._toggleFullscreen() }, icon('full'));
      u.bar = h('div', { class: 'bar', part: 'controls' }, u.playBtn, u.muteBtn, h('span', { class: 'grow' }), u.quality, u.pip, u.full);
      u.stage = h('div', { class: 'stage', tabindex: '0', 'aria-label': 'Live video; keys: k play/pause, m mute, f fullscreen, p picture in picture' },
        u.video, h('div', { class: 'badges' }, u.live, u.modeBadge, u.viewers, u.latency), u.msg, u.big, u.bar);
      u.log = h('ul', { class: 'log', 'aria-live': 'polite', 'aria-label': 'Chat' });
      u.poll = h('div', { class: 'poll', hidden: true, role: 'group' });
      u.input = h('input', { 'aria-label': 'Chat message', maxlength: '1000', placeholder: 'Say something…' });
      u.form = h('form', { hidden: true, onsubmit: (e) => this._sendChat(e) }, u.input, h('button', { type: 'submit' }, 'Send'));
      u.chat = h('aside', { class: 'chat', part: 'chat' }, u.poll, u.log, u.form);
      u.wrap = h('div', { class: 'wrap' }, u.stage, u.chat);
      root.append(h('style', {}, CSS), u.wrap);
      this._fillQualities([]);

      u.stage.addEventListener('keydown', (e) => this._onKey(e));
      u.video.addEventListener('playing', () => this._onPlaying());
      u.video.addEventListener('pause', () => {
        if (this.stats.state === 'playing') this._setState('paused');
        this._showPlay();
      });
      u.video.addEventListener('volumechange', () => this._showMute());
    }

    _onKey(e) {
      if (e.target !== this._ui.stage || e.ctrlKey || e.metaKey || e.altKey) return;
      const act = { k: () => this._togglePlay(), ' ': () => this._togglePlay(), m: () => this._toggleMute(),
        f: () => this._toggleFullscreen(), p: () => this._togglePiP() }[e.key.toLowerCase()];
      if (act) {
        e.preventDefault();
        act();
      }
    }

    _togglePlay() {
      this._ui.video.paused || this.stats.state === 'idle' ? this.play() : this.pause();
    }

    _toggleMute() {
      this._ui.video.muted = !this._ui.video.muted;
    }

    _toggleFullscreen() {
      if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
      else this._ui.wrap.requestFullscreen?.().catch(() => {});
    }

    _togglePiP() {
      if (document.pictureInPictureElement) document.exitPictureInPicture().catch(() => {});
      else this._ui.video.requestPictureInPicture?.().catch(() => {});
    }

    _showPlay() {
      const paused = this._ui.video.paused;
      this._ui.playBtn.textContent = paused ? '▶' : '❚❚';
      this._ui.playBtn.setAttribute('aria-label', paused ? 'Play' : 'Pause');
    }

    _showMute() {
      const m = this._ui.video.muted;
      this._ui.muteBtn.replaceChildren(icon(m ? 'muted' : 'sound'));
      this._ui.muteBtn.setAttribute('aria-label', m ? 'Unmute' : 'Mute');
    }

    _fillQualities(list) {
      this.stats.qualities = list;
      const sel = this._ui.quality;
      sel.replaceChildren(h('option', { value: 'auto' }, 'Auto'), ...list.map((o) => h('option', { value: o.value }, o.label)));
      sel.value = list.some((o) => o.value === this._quality) ? this._quality : 'auto';
      sel.hidden = list.length === 0;
    }

    _setState(state, message = '') {
      const s = this.stats;
      s.state = state;
      s.live = state === 'playing' || state === 'paused';
      const u = this._ui;
      u.live.textContent = s.live ? 'LIVE' : state === 'offline' ? 'OFFLINE' : state === 'connecting' ? 'CONNECTING' : state.toUpperCase();
      u.live.classList.toggle('live', s.live);
      u.msg.textContent = message;
      u.big.hidden = !['idle', 'failed', 'paused'].includes(state);
      u.modeBadge.hidden = !s.live;
      u.modeBadge.textContent = s.mode === 'hls' ? 'LL-HLS' : 'WebRTC';
      u.latency.hidden = !s.live;
    }

    _emit(type, detail) {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    }

    _fail(err) {
      this.stats.error = err.message;
      this._setState('failed', `Could not play: ${err.message}`);
      this._emit('error', { message: err.message, mode: this.stats.mode });
    }

    _onPlaying() {
      this._showPlay();
      if (this.stats.state === 'playing') return;
      if (this.stats.mode === 'hls' && this._hls) this._joinLive(this._hls);
      this._setState('playing');
      this._emit('playing', { mode: this.stats.mode });
    }

    // _joinLive moves the playhead to hls.js's live sync position when
    // playback starts further behind than its target, which hls.js would
    // otherwise keep (it loads from the INDEPENDENT part before the target,
    // and parts come in a burst when a ladder starts).
    _joinLive(hls) {
      const target = hls.liveSyncPosition;
      const video = this._ui.video;
      if (target && hls.latency > hls.targetLatency + 0.25 && target > video.currentTime) video.currentTime = target;
    }

    // ---- media ----
    _stopMedia() {
      this._run++;
      this._abort?.abort();
      this._abort = null;
      clearInterval(this._statsTimer);
      const pc = this._pc;
      this._pc = null;
      if (pc) {
        if (this._location) fetch(this._location, { method: 'DELETE', headers: this._auth(), keepalive: true }).catch(() => {});
        pc.close();
      }
      this._location = '';
      this._hls?.destroy();
      this._hls = null;
      const v = this._ui.video;
      v.srcObject = null;
      v.removeAttribute('src');
      this._prev = null;
    }

    _auth() {
      return this.token ? { Authorization: `Bearer ${this.token}` } : {};
    }

    // _restart starts over in mode (default: the mode attribute); each start
    // bumps _run, so the loops of a previous start give up.
    _restart(mode = this.mode) {
      this._stopMedia();
      const run = this._run;
      this._abort = new AbortController();
      const signal = this._abort.signal;
      this._setState('connecting', 'Connecting…');
      const go = mode === 'hls' ? this._playHLS(run, signal) : this._playWebRTC(run, signal, mode === 'auto');
      go.catch((err) => {
        if (run === this._run && !signal.aborted) this._fail(err);
      });
    }

    // _startVideo plays the media element; where the browser refuses to
    // autoplay (sound on, no user gesture) it waits for a click on play.
    _startVideo() {
      this._ui.video.play().catch((err) => {
        if (err.name === 'NotAllowedError') this._setState('paused', 'Press play to start');
      });
    }

    _fallback(reason) {
      this.stats.fallbackReason = reason;
      this._emit('fallback', { from: 'webrtc', to: 'hls', reason });
      this._restart('hls');
    }

    // _playWebRTC connects over WHEP, retrying with backoff while nobody
    // publishes (404) or the network is down. With canFallBack (mode auto) a
    // connection that does not play within connectTimeout, or a server that
    // refuses WebRTC viewers (broadcast mode, capacity), switches to LL-HLS.
    async _playWebRTC(run, signal, canFallBack) {
      this.stats.mode = 'webrtc';
      this._fillQualities(LAYERS.map(([value, label]) => ({ value, label })));
      if (typeof RTCPeerConnection === 'undefined') {
        if (canFallBack) return this._fallback('WebRTC is not available');
        throw new Error('WebRTC is not available in this browser');
      }
      for (let attempt = 0; ; attempt++) {
        try {
          await this._connectWHEP(run, signal);
          return;
        } catch (err) {
          if (run !== this._run || signal.aborted) return;
          const refused = err instanceof HTTPError && (err.status === 429 || err.status === 503);
          const timedOut = err.name === 'TimeoutError';
          if (canFallBack && (refused || timedOut)) {
            return this._fallback(timedOut ? `WebRTC did not connect within ${this.connectTimeout} ms` : `WebRTC refused: ${err.message}`);
          }
          if (err instanceof HTTPError && [400, 401, 403].includes(err.status)) throw err;
          const offline = err instanceof HTTPError && err.status === 404;
          this._setState(offline ? 'offline' : 'connecting', offline ? 'Offline: waiting for the stream…' : `Reconnecting: ${err.message}`);
          this._stopPC();
          await sleep(offline ? Math.min(backoff(0), 2000 + 1000 * attempt) : backoff(attempt), signal);
        }
      }
    }

    _stopPC() {
      clearInterval(this._statsTimer);
      this._pc?.close();
      this._pc = null;
      this._prev = null;
    }

    async _connectWHEP(run, signal) {
      const deadline = AbortSignal.timeout(this.connectTimeout);
      const both = AbortSignal.any([signal, deadline]);
      const iceServers = await this._iceServers(both);
      const pc = (this._pc = new RTCPeerConnection({ iceServers }));
      const stream = new MediaStream();
      pc.addEventListener('track', (e) => stream.addTrack(e.track));
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      await Promise.race([
        new Promise((r) => pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && r())),
        sleep(1000, both),
      ]);
      const url = this.url(`/whep/${encodeURIComponent(this.room)}`);
      if (this._quality !== 'auto') url.searchParams.set('layer', this._quality);
      const res = await fetch(url, {
        method: 'POST', body: pc.localDescription.sdp, signal: both,
        headers: { 'Content-Type': 'application/sdp', ...this._auth() },
      }).catch((err) => {
        throw deadline.aborted ? deadline.reason : err;
      });
      if (res.status !== 201) throw await errorOf(res);
      this._location = new URL(res.headers.get('Location') || '', res.url).href;
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      // Connected (ICE and DTLS) within the deadline, or it is a failure.
      await new Promise((resolve, reject) => {
        const check = () => {
          if (pc.connectionState === 'connected') resolve();
          if (pc.connectionState === 'failed') reject(new Error('the WebRTC connection failed'));
        };
        pc.addEventListener('connectionstatechange', check);
        both.addEventListener('abort', () => reject(both.reason), { once: true });
        check();
      });
      if (run !== this._run) return;
      this._ui.video.srcObject = stream;
      this._startVideo();
      this._statsTimer = setInterval(() => this._updateStats(), STATS_MS);
      // Network loss or the publisher leaving: start over, with backoff.
      pc.addEventListener('connectionstatechange', () => {
        if (pc === this._pc && pc.connectionState === 'failed') this._reconnect('The connection was lost; reconnecting…');
      });
      const dtls = pc.getReceivers()[0]?.transport;
      dtls?.addEventListener('statechange', () => {
        if (pc === this._pc && dtls.state === 'closed') this._reconnect('The stream ended; waiting for it…');
      });
    }

    _reconnect(message) {
      const mode = this.stats.mode;
      this._stopMedia();
      this._setState('connecting', message);
      const run = this._run;
      sleep(backoff(0)).then(() => run === this._run && this._restart(mode === 'hls' ? 'hls' : 'webrtc'));
    }

    async _iceServers(signal) {
      const url = this.url('/ice-servers');
      url.searchParams.set('room', this.room);
      try {
        const res = await fetch(url, { headers: this._auth(), signal, cache: 'no-store' });
        const body = res.ok ? await res.json() : {};
        return Array.isArray(body.iceServers) ? body.iceServers : [];
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        return [];
      }
    }

    // _playHLS waits for the room's multivariant playlist (404: offline;
    // 503: the ladder is starting), then plays it with hls.js, which is
    // loaded now and not before.
    async _playHLS(run, signal) {
      this.stats.mode = 'hls';
      this._fillQualities([]);
      const [{ default: Hls }, src] = await Promise.all([
        import(this.url(HLS_MODULE).href),
        this._awaitPlaylist(signal),
      ]);
      if (run !== this._run) return;
      if (!Hls.isSupported()) throw new Error('this browser cannot play LL-HLS (no Media Source Extensions)');
      // hls.js in low-latency mode with a 1 s target, reached once at the
      // start by _joinLive (see watch-hls.js).
      const hls = (this._hls = new Hls({ lowLatencyMode: true, backBufferLength: 30, liveSyncDuration: 1.0 }));
      let failures = 0;
      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        const heights = [...new Set(hls.levels.map((l) => l.height))].sort((a, b) => b - a);
        this._fillQualities(heights.map((ht) => ({ value: `${ht}p`, label: `${ht}p` })));
        if (this._quality !== 'auto') hls.currentLevel = hls.levels.findIndex((l) => `${l.height}p` === this._quality);
      });
      hls.on(Hls.Events.FRAG_BUFFERED, () => (failures = 0));
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (!data.fatal || hls !== this._hls) return;
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR && failures++ < 2) hls.recoverMediaError();
        else this._reconnect(`LL-HLS: ${data.details}; reconnecting…`);
      });
      hls.loadSource(src);
      hls.attachMedia(this._ui.video);
      this._startVideo();
      this._statsTimer = setInterval(() => this._updateStats(), STATS_MS);
    }

    async _awaitPlaylist(signal) {
      const url = this.url(`/hls/${encodeURIComponent(this.room)}/index.m3u8`);
      for (let attempt = 0; ; attempt++) {
        let wait = backoff(Math.min(attempt, 2));
        try {
          const res = await fetch(url, { cache: 'no-store', signal });
          if (res.ok) return res.url;
          const retry = Number(res.headers.get('Retry-After'));
          if (retry > 0) wait = Math.min(retry, 30) * 1000;
          this._setState(res.status === 404 ? 'offline' : 'connecting', res.status === 404 ? 'Offline: waiting for the stream…' : 'Starting LL-HLS…');
        } catch (err) {
          if (signal.aborted) throw err;
          this._setState('offline', 'Offline: waiting for the stream…');
        }
        await sleep(wait, signal);
      }
    }

    // _updateStats refreshes frames, latency and quality.
    //
    // Latency: for LL-HLS, now − the PROGRAM-DATE-TIME of the frame on screen
    // (hls.playingDate): glass to glass when the clocks agree. For WebRTC no
    // frame carries a wall-clock time, so it is the receiver's share: half the
    // ICE round trip (network) + the jitter buffer delay per emitted frame +
    // decode time per frame, over the last interval (RTCInboundRtpStreamStats
    // jitterBufferDelay / jitterBufferEmittedCount, totalDecodeTime /
    // framesDecoded). Capture and encoding at the publisher are not in it.
    async _updateStats() {
      const s = this.stats;
      const v = this._ui.video;
      if (s.mode === 'hls' && this._hls) {
        s.framesDecoded = v.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
        const pdt = this._hls.playingDate;
        if (pdt) s.latency = Math.max(0, (Date.now() - pdt.getTime()) / 1000);
      } else if (this._pc) {
        const pc = this._pc;
        const report = await pc.getStats();
        if (pc !== this._pc) return;
        let inb;
        let rtt = 0;
        report.forEach((r) => {
          if (r.type === 'inbound-rtp' && r.kind === 'video') inb = r;
          if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') rtt = r.currentRoundTripTime || rtt;
        });
        if (!inb) return;
        const p = this._prev || { jitterBufferDelay: 0, jitterBufferEmittedCount: 0, totalDecodeTime: 0, framesDecoded: 0 };
        const emitted = inb.jitterBufferEmittedCount - p.jitterBufferEmittedCount;
        const decoded = inb.framesDecoded - p.framesDecoded;
        const jb = emitted > 0 ? (inb.jitterBufferDelay - p.jitterBufferDelay) / emitted : 0;
        const dec = decoded > 0 ? (inb.totalDecodeTime - p.totalDecodeTime) / decoded : 0;
        this._prev = inb;
        s.framesDecoded = inb.framesDecoded;
        if (emitted > 0) s.latency = rtt / 2 + jb + dec;
      }
      const u = this._ui;
      u.latency.textContent = s.latency ? `${s.latency < 1 ? Math.round(s.latency * 1000) + ' ms' : s.latency.toFixed(1) + ' s'} latency` : '';
      u.latency.hidden = !s.latency || !s.live;
    }
  }

  // @include chat.js
  Object.assign(StarlingPlayer.prototype, chatMethods);
  customElements.define('starling-player', StarlingPlayer);
})();
