// A WHIP (RFC 9725) publisher: the camera and microphone of this browser to a
// WebRTC server, with three simulcast layers by default.

import { Session, adoptIceServers, newPeerConnection, postOffer, waitForIceGathering } from './sdp-exchange.js';

/** The simulcast layers, lowest first: quarter, half and full resolution. */
export const simulcastEncodings = Object.freeze([
  Object.freeze({ rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 }),
  Object.freeze({ rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 }),
  Object.freeze({ rid: 'f', maxBitrate: 1500000 }),
]);

/** Opens the camera at 1280x720 and, when audio is true, the microphone. */
export function openCamera({ audio = true } = {}) {
  return navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720 }, audio });
}

/**
 * Publishes stream to the WHIP endpoint url and resolves to a WHIPSession once
 * the server has answered (media then starts as soon as ICE connects). The
 * peer connection uses iceServers (see fetchIceServers); relay sends all
 * media through TURN.
 */
export async function publish(url, stream, { token = '', simulcast = true, iceServers = [], relay = false, codec = '' } = {}) {
  const pc = newPeerConnection(iceServers, relay);
  try {
    for (const track of stream.getVideoTracks()) {
      const sendEncodings = simulcast
        ? simulcastEncodings.map((e) => ({ ...e }))
        : [{ maxBitrate: 1500000 }];
      const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings });
      if (codec) preferCodec(tr, codec);
    }
    for (const track of stream.getAudioTracks()) {
      pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    }
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 1000);
    const session = await postOffer(url, pc.localDescription.sdp, token);
    await pc.setRemoteDescription({ type: 'answer', sdp: session.answer });
    adoptIceServers(pc, session.iceServers);
    return new WHIPSession(pc, session, token);
  } catch (err) {
    pc.close();
    throw err;
  }
}

/**
 * preferCodec puts the browser's encodings of codec ('vp8', 'vp9', 'h264',
 * 'av1') first in the transceiver's offer; for H.264, the packetization mode
 * 1 ones (what SFUs and the LL-HLS passthrough expect). It throws when the
 * browser cannot send codec.
 */
function preferCodec(transceiver, codec) {
  const all = RTCRtpSender.getCapabilities('video')?.codecs ?? [];
  const want = `video/${codec}`.toLowerCase();
  const rank = (c) => (c.mimeType.toLowerCase() !== want ? 2 : /packetization-mode=0/.test(c.sdpFmtpLine ?? '') ? 1 : 0);
  if (!all.some((c) => rank(c) === 0)) throw new Error(`this browser cannot send ${codec}`);
  transceiver.setCodecPreferences([...all].sort((a, b) => rank(a) - rank(b)));
}

/** A published session. */
export class WHIPSession extends Session {}
