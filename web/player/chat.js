// The <starling-player> widget's chat and polls, over the room's chat
// websocket: methods of StarlingPlayer, served inside player.js's scope
// (web/player.go joins the two), so h, icon and backoff are in reach.
const chatMethods = {
  _startChat() {
    if (this._chat) return;
    const chat = (this._chat = { seq: 0, attempt: 0, closed: false, ws: null, pending: new Map(), n: 0 });
    this._ui.log.replaceChildren(h('li', { class: 'note empty' }, 'No messages yet'));
    const connect = () => {
      if (chat.closed) return;
      const url = this.url(`/chat/${encodeURIComponent(this.room)}`);
      url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
      const ws = (chat.ws = new WebSocket(url));
      ws.onopen = () => {
        const hello = { type: 'hello', history: 50 };
        if (this.token) hello.token = this.token;
        if (chat.seq) hello.since = chat.seq;
        ws.send(JSON.stringify(hello));
      };
      ws.onmessage = (e) => {
        try {
          this._onChat(chat, JSON.parse(e.data));
        } catch {
          // A frame we cannot read is skipped.
        }
      };
      ws.onclose = (e) => {
        if (chat.closed || chat.ws !== ws) return;
        if (e.code === 4001 || e.code === 4003) {
          this._chatNote(e.code === 4003 ? 'You are banned from this chat.' : 'Chat is not available without a token.');
          return;
        }
        setTimeout(connect, backoff(chat.attempt++));
      };
    };
    connect();
  },

  _stopChat() {
    if (!this._chat) return;
    this._chat.closed = true;
    this._chat.ws?.close();
    this._chat = null;
  },

  _chatSend(msg) {
    const chat = this._chat;
    if (!chat || chat.ws?.readyState !== WebSocket.OPEN) return false;
    msg.client_id = `w-${Date.now().toString(36)}-${chat.n++}`;
    chat.ws.send(JSON.stringify(msg));
    return true;
  },

  _onChat(chat, m) {
    switch (m.type) {
      case 'welcome':
        chat.attempt = 0;
        this._ui.form.hidden = !m.can_write;
        this._setViewers(m.viewers);
        for (const p of m.polls || []) this._showPoll(p);
        break;
      case 'presence':
        this._setViewers(m.viewers);
        break;
      case 'event':
        if (m.event.seq <= chat.seq) return;
        chat.seq = m.event.seq;
        this._onEvent(m.event);
        break;
      case 'tally':
        this._showPoll(m.poll);
        break;
      case 'ack':
        if (this._vote && m.client_id === this._vote.id) this._vote.acked = true;
        break;
      case 'error':
        this._chatNote(m.message || m.code);
        break;
    }
  },

  _onEvent(ev) {
    switch (ev.kind) {
      case 'message': {
        const li = h('li', { 'data-seq': String(ev.seq) }, h('span', { class: 'who' }, ev.name || ev.from || 'anonymous'), h('span', { class: 'text' }, ev.text ?? ''));
        this._ui.log.querySelector('.empty')?.remove();
        this._ui.log.append(li);
        li.scrollIntoView?.({ block: 'nearest' });
        this._emit('chatmessage', { seq: ev.seq, from: ev.from, name: ev.name, text: ev.text, ts: ev.ts });
        break;
      }
      case 'delete':
        this._ui.log.querySelector(`li[data-seq="${Number(ev.target)}"]`)?.remove();
        break;
      case 'poll':
      case 'poll_closed':
        if (ev.poll) this._showPoll(ev.poll);
        break;
    }
  },

  _chatNote(text) {
    this._ui.log.append(h('li', { class: 'note' }, text));
  },

  _setViewers(n) {
    if (typeof n !== 'number') return;
    this.stats.viewers = n;
    this._ui.viewers.replaceChildren(icon('eye'), String(n));
    this._ui.viewers.hidden = false;
  },

  // _showPoll shows the poll card for poll p (the newest one wins), with
  // one button per option: the count is its label, a click votes.
  _showPoll(p) {
    if (this._poll && this._poll.id !== p.id && p.created < this._poll.created) return;
    this._poll = p;
    const card = this._ui.poll;
    const total = (p.counts || []).reduce((a, b) => a + b, 0);
    const mine = this._vote?.poll === p.id ? this._vote.option : -1;
    card.replaceChildren(
      h('h3', {}, p.question + (p.closed ? ' (closed)' : '')),
      ...p.options.map((opt, i) => {
        const n = p.counts?.[i] ?? 0;
        return h('button', {
          type: 'button', 'data-option': String(i), 'aria-pressed': String(mine === i),
          disabled: !!p.closed || !this.token, onclick: () => this.vote(p.id, i),
        }, h('span', {}, opt), h('span', {}, total ? `${n} · ${Math.round((100 * n) / total)}%` : String(n)));
      }),
    );
    card.setAttribute('aria-label', `Poll: ${p.question}`);
    card.hidden = false;
  },

  /** Votes option (its index) in poll id; needs a token. */
  vote(id, option) {
    const msg = { type: 'vote', poll: id, option };
    if (!this._chatSend(msg)) return false;
    this._vote = { poll: id, option, id: msg.client_id, acked: false };
    if (this._poll?.id === id) this._showPoll(this._poll);
    return true;
  },

  _sendChat(e) {
    e.preventDefault();
    const text = this._ui.input.value.trim();
    if (text && this._chatSend({ type: 'send', text })) this._ui.input.value = '';
  },
};
