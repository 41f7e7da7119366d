// A WHEP viewer: receives one room's video and audio from a WebRTC server.

import {
  HTTPError,
  Session,
  adoptIceServers,
  newPeerConnection,
  postOffer,
  waitForIceGathering,
} from './sdp-exchange.js';

/**
 * Starts watching from the WHEP endpoint url and resolves to a WHEPSession once
 * the server has answered. While the server answers 404 (nobody publishes yet)
 * it calls onWaiting and asks again every retryMs. Aborting signal gives up.
 * The peer connection uses iceServers (see fetchIceServers); relay receives
 * all media through TURN.
 */
export async function watch(
  url,
  { token = '', onWaiting = () => {}, retryMs = 2000, signal, iceServers = [], relay = false } = {},
) {
  const pc = newPeerConnection(iceServers, relay);
  const stream = new MediaStream();
  pc.addEventListener('track', (e) => stream.addTrack(e.track));
  try {
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 1000);
    const session = await postUntilPublished(url, pc.localDescription.sdp, token, onWaiting, retryMs, signal);
    await pc.setRemoteDescription({ type: 'answer', sdp: session.answer });
    adoptIceServers(pc, session.iceServers);
    return new WHEPSession(pc, stream, session, token);
  } catch (err) {
    pc.close();
    throw err;
  }
}

// The offer stays valid while we wait, so the same one is sent again.
async function postUntilPublished(url, sdp, token, onWaiting, retryMs, signal) {
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await postOffer(url, sdp, token, signal);
    } catch (err) {
      if (!(err instanceof HTTPError) || err.status !== 404) throw err;
      onWaiting(err);
    }
    await abortableDelay(retryMs, signal);
  }
}

function abortableDelay(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A playing session, with the stream it receives. */
export class WHEPSession extends Session {
  constructor(pc, stream, session, token) {
    super(pc, session, token);
    this.stream = stream;
  }
}
