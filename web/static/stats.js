// Once-a-second summaries of RTCPeerConnection.getStats() for the pages.

/** Turns monotonically growing counters into per-second rates. */
export class RateMeter {
  #last = new Map();

  /** Returns the per-second rate of counter key since its previous sample (0 at first). */
  rate(key, value, timestampMs) {
    const prev = this.#last.get(key);
    this.#last.set(key, { value, timestampMs });
    if (!prev || timestampMs <= prev.timestampMs || value < prev.value) return 0;
    return ((value - prev.value) * 1000) / (timestampMs - prev.timestampMs);
  }
}

const ridOrder = { q: 0, h: 1, f: 2 };

/**
 * Returns one entry per outgoing video encoding (simulcast layer), lowest
 * first: { rid, frameWidth, frameHeight, framesPerSecond, framesEncoded,
 * bytesSent, bitrate, qualityLimitationReason }.
 */
export async function outboundVideo(pc, meter) {
  const report = await pc.getStats();
  const encodings = [];
  for (const s of report.values()) {
    if (s.type !== 'outbound-rtp' || s.kind !== 'video') continue;
    encodings.push({
      rid: s.rid ?? '',
      frameWidth: s.frameWidth ?? 0,
      frameHeight: s.frameHeight ?? 0,
      framesPerSecond: s.framesPerSecond ?? 0,
      framesEncoded: s.framesEncoded ?? 0,
      bytesSent: s.bytesSent ?? 0,
      bitrate: meter.rate(`${s.id}/bits`, (s.bytesSent ?? 0) * 8, s.timestamp),
      qualityLimitationReason: s.qualityLimitationReason ?? '',
    });
  }
  encodings.sort((a, b) => (ridOrder[a.rid] ?? 9) - (ridOrder[b.rid] ?? 9));
  return encodings;
}

/** Inbound statistics before anything was received. */
export const noInbound = Object.freeze({
  framesDecoded: 0,
  frameWidth: 0,
  frameHeight: 0,
  framesPerSecond: 0,
  bitrate: 0,
  jitterBufferDelayMs: 0,
  packetsLost: 0,
});

/**
 * Returns what a viewer receives: the video's framesDecoded, frameWidth,
 * frameHeight, framesPerSecond and jitterBufferDelayMs (over the last
 * interval), the bitrate of video and audio together, and packetsLost summed
 * over both.
 */
export async function inbound(pc, meter) {
  const report = await pc.getStats();
  const out = { ...noInbound };
  for (const s of report.values()) {
    if (s.type !== 'inbound-rtp') continue;
    out.bitrate += meter.rate(`${s.id}/bits`, (s.bytesReceived ?? 0) * 8, s.timestamp);
    out.packetsLost += Math.max(0, s.packetsLost ?? 0);
    if (s.kind !== 'video') continue;
    out.framesDecoded = s.framesDecoded ?? 0;
    out.frameWidth = s.frameWidth ?? 0;
    out.frameHeight = s.frameHeight ?? 0;
    out.framesPerSecond = s.framesPerSecond ?? 0;
    const delay = meter.rate(`${s.id}/jbdelay`, s.jitterBufferDelay ?? 0, s.timestamp);
    const emitted = meter.rate(`${s.id}/jbemitted`, s.jitterBufferEmittedCount ?? 0, s.timestamp);
    if (emitted > 0) out.jitterBufferDelayMs = (delay / emitted) * 1000;
  }
  return out;
}

/**
 * Returns the ICE candidate pair pc sends and receives on: { state, localType,
 * localProtocol, relayProtocol, remoteType, remoteAddress }, where localType
 * "relay" means the media goes through TURN; null before a pair is selected.
 */
export async function selectedCandidatePair(pc) {
  const report = await pc.getStats();
  let pair = null;
  for (const s of report.values()) {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) ?? pair;
  }
  if (!pair) {
    // Browsers without transport stats mark the pair itself.
    for (const s of report.values()) {
      if (s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded'))) pair = s;
    }
  }
  if (!pair) return null;
  const local = report.get(pair.localCandidateId) ?? {};
  const remote = report.get(pair.remoteCandidateId) ?? {};
  return {
    state: pair.state ?? '',
    localType: local.candidateType ?? '',
    localProtocol: local.protocol ?? '',
    relayProtocol: local.relayProtocol ?? '',
    remoteType: remote.candidateType ?? '',
    remoteAddress: `${remote.address ?? remote.ip ?? ''}:${remote.port ?? ''}`,
  };
}

/** Formats bits per second for people: "850 kbit/s", "1.42 Mbit/s". */
export function formatBitrate(bps) {
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(bps / 1e3)} kbit/s`;
}

/** Formats a resolution, or a dash when nothing is known yet. */
export function formatResolution(width, height) {
  return width && height ? `${width}×${height}` : '–';
}

/** What the server sends a viewer, before anything is known. */
export const noServerView = Object.freeze({
  estimate: 0,
  estimateSource: '',
  serverLayer: '',
  layerSwitches: 0,
  pausedSeconds: 0,
  paused: false,
});

const layerNames = ['q', 'h', 'f'];

/**
 * Reads the server's view of a WHEP session (GET on its resource): the
 * bandwidth estimate of the connection, and for the video track the layer
 * the server forwards, its switches and the time it was paused for lack of
 * bandwidth. Resolves to noServerView when the server does not say (another
 * WHEP server, or the session has ended).
 */
export async function serverView(location, token, signal) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let body;
  try {
    const res = await fetch(location, { headers, signal, cache: 'no-store' });
    if (!res.ok) return noServerView;
    body = await res.json();
  } catch {
    return noServerView;
  }
  const video = (body.tracks ?? []).find((t) => t.kind === 'video') ?? {};
  return {
    estimate: body.estimate ?? 0,
    estimateSource: body.source ?? '',
    serverLayer: video.paused ? 'paused' : (layerNames[video.layer] ?? ''),
    layerSwitches: video.switches ?? 0,
    pausedSeconds: video.pausedSeconds ?? 0,
    paused: Boolean(video.paused),
  };
}
