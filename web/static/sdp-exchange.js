// The HTTP half of WHIP (RFC 9725) and WHEP: POST an SDP offer, read the
// answer and the session resource, DELETE the resource to end the session.

/** An error response from the server: its status and its JSON "error" text. */
export class HTTPError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'HTTPError';
    this.status = status;
  }
}

/**
 * Resolves when ICE gathering is complete or after timeoutMs, whichever comes
 * first. An offer with the candidates gathered so far is enough on a LAN or
 * loopback; waiting for every candidate can take many seconds on some hosts.
 */
export function waitForIceGathering(pc, timeoutMs = 1000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const finish = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onChange);
      resolve();
    };
    const onChange = () => {
      if (pc.iceGatheringState === 'complete') finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener('icegatheringstatechange', onChange);
  });
}

/**
 * Fetches the ICE servers a Starling server offers for room before the first
 * offer: GET /ice-servers?room= on the origin of the WHIP or WHEP URL, with the
 * same token. WHIP and WHEP give them only in the 201's Link headers (RFC 9725
 * section 4.6), too late to create the peer connection with them. Resolves to
 * [] when the server has no such endpoint (another WHIP server) or cannot be
 * asked; other errors throw HTTPError, as the POST would.
 */
export async function fetchIceServers(endpoint, room, token, signal) {
  const url = new URL('/ice-servers', endpoint);
  url.searchParams.set('room', room);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let res;
  try {
    res = await fetch(url, { headers, signal, cache: 'no-store' });
  } catch (err) {
    if (signal?.aborted) throw err;
    return []; // unreachable, or no CORS for it: go on without
  }
  if (res.status === 404 || res.status === 405) return [];
  if (!res.ok) throw new HTTPError(res.status, await errorText(res));
  const body = await res.json().catch(() => ({}));
  return Array.isArray(body.iceServers) ? body.iceServers : [];
}

/**
 * Creates a peer connection with iceServers. relay sends every candidate
 * through TURN (iceTransportPolicy "relay"), so it needs a TURN server.
 */
export function newPeerConnection(iceServers = [], relay = false) {
  const hasTurn = iceServers.some((s) => [s.urls].flat().some((u) => /^turns?:/.test(u)));
  if (relay && !hasTurn) throw new Error('relay-only was asked for, but the server offers no TURN server');
  return new RTCPeerConnection({ iceServers, iceTransportPolicy: relay ? 'relay' : 'all' });
}

/**
 * Keeps the ICE servers of a 201's Link headers in the configuration of pc,
 * when it was created without any, so that an ICE restart uses them (RFC 9725
 * section 4.6).
 */
export function adoptIceServers(pc, iceServers) {
  const config = pc.getConfiguration();
  if (iceServers.length === 0 || config.iceServers?.length) return;
  try {
    pc.setConfiguration({ ...config, iceServers });
  } catch {
    // A browser that refuses the change keeps the servers it has.
  }
}

/**
 * POSTs an SDP offer and returns the session the server created:
 * { answer, location, etag, iceServers }. Anything but 201 throws HTTPError.
 */
export async function postOffer(url, sdp, token, signal) {
  const headers = { 'Content-Type': 'application/sdp' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method: 'POST', headers, body: sdp, signal });
  if (res.status !== 201) {
    throw new HTTPError(res.status, await errorText(res));
  }
  const answer = await res.text();
  const location = res.headers.get('Location');
  if (!location) throw new Error('the server sent no Location for the session');
  return {
    answer,
    // Location may be relative; it is relative to the URL that was POSTed.
    location: new URL(location, res.url).href,
    etag: res.headers.get('ETag'),
    iceServers: parseIceServers(res.headers.get('Link') ?? ''),
  };
}

/** DELETEs a session resource. Errors are ignored: the session is over either way. */
export async function deleteResource(location, token) {
  if (!location) return;
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  try {
    // keepalive lets the request finish when the page is being closed.
    await fetch(location, { method: 'DELETE', headers, keepalive: true, signal: AbortSignal.timeout(3000) });
  } catch {
    // The server may be gone already.
  }
}

async function errorText(res) {
  const body = await res.text().catch(() => '');
  try {
    const parsed = JSON.parse(body);
    if (parsed && typeof parsed.error === 'string') return `${res.status}: ${parsed.error}`;
  } catch {
    // Not JSON; fall through to the raw body.
  }
  return `${res.status}: ${body.trim() || res.statusText || 'request failed'}`;
}

/**
 * Parses Link header values with rel="ice-server" (RFC 9725 section 4.6) into
 * RTCIceServer dictionaries. Several Link headers arrive joined by commas.
 */
export function parseIceServers(header) {
  const servers = [];
  for (const link of splitOutsideQuotes(header, ',')) {
    const m = /^\s*<([^>]*)>(.*)$/s.exec(link);
    if (!m) continue;
    const params = {};
    for (const part of splitOutsideQuotes(m[2], ';')) {
      const eq = part.indexOf('=');
      if (eq < 0) continue;
      const key = part.slice(0, eq).trim().toLowerCase();
      let value = part.slice(eq + 1).trim();
      if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
        value = value.slice(1, -1).replace(/\\(.)/g, '$1');
      }
      params[key] = value;
    }
    if (!(params.rel ?? '').split(/\s+/).includes('ice-server')) continue;
    const server = { urls: m[1] };
    if (params.username !== undefined) server.username = params.username;
    if (params.credential !== undefined) server.credential = params.credential;
    servers.push(server);
  }
  return servers;
}

// splitOutsideQuotes splits s at sep where sep is outside "..." and <...>.
function splitOutsideQuotes(s, sep) {
  const parts = [];
  let start = 0;
  let quoted = false;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (c === '<') {
      angle = true;
    } else if (c === '>') {
      angle = false;
    } else if (c === sep && !angle) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.filter((p) => p.trim() !== '');
}

/**
 * Calls callback once the peer connection's DTLS transport closes: the server
 * closes it when it ends the session, which ICE alone would take some 15 s to
 * notice.
 */
export function onTransportClosed(pc, callback) {
  const dtls = [...pc.getSenders(), ...pc.getReceivers()].find((x) => x.transport)?.transport;
  dtls?.addEventListener('statechange', () => {
    if (dtls.state === 'closed') callback();
  });
}

/** A WHIP or WHEP session: its peer connection and its resource on the server. */
export class Session {
  constructor(pc, { location, etag, iceServers }, token) {
    this.pc = pc;
    this.location = location;
    this.etag = etag;
    // From the Link headers; the pages show them and keep them for a restart.
    this.iceServers = iceServers;
    this.token = token;
  }

  /** Ends the session on the server, then closes the peer connection. */
  async stop() {
    await deleteResource(this.location, this.token);
    this.pc.close();
  }
}
