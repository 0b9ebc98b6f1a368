// A minimal MQTT 3.1.1 client over WebSockets: connect, subscribe at QoS
// 0, receive and publish at QoS 0, keep alive, and reconnect with backoff
// when the broker goes away. All the dashboard needs, and nothing it does
// not (no QoS 1/2, no retained-message handling beyond receiving).
'use strict';

const enc = new TextEncoder();
const dec = new TextDecoder();

function utf8(s) {
  const b = enc.encode(s);
  return [b.length >> 8, b.length & 255, ...b];
}

function remaining(n) {
  const out = [];
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 128;
    out.push(d);
  } while (n > 0);
  return out;
}

function packet(type, body) {
  return new Uint8Array([type, ...remaining(body.length), ...body]);
}

export class MQTT {
  // url: ws://host:port/, or a function returning (a promise of) the URL
  // to use for each connection (a presigned URL expires); filter: the
  // topic filter to subscribe to; onMessage(topic, text);
  // onStatus('connecting'|'live'|'reconnecting').
  constructor(url, filter, onMessage, onStatus) {
    Object.assign(this, { url, filter, onMessage, onStatus });
    this.backoff = 250;
    this.packetId = 1;
    this.connect();
  }

  async connect() {
    this.onStatus(this.ws ? 'reconnecting' : 'connecting');
    let url = this.url;
    try {
      if (typeof url === 'function') url = await url();
    } catch (e) {
      this.ws = this.ws || {};
      this.retry(this.ws);
      return;
    }
    const ws = new WebSocket(url, ['mqtt']);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.buf = new Uint8Array(0);
    ws.onopen = () => {
      const id = 'tapline-dash-' + Math.random().toString(16).slice(2, 10);
      ws.send(packet(0x10, [...utf8('MQTT'), 4, 0x02, 0, 30, ...utf8(id)]));
    };
    ws.onmessage = (e) => this.receive(new Uint8Array(e.data));
    ws.onclose = () => this.retry(ws);
    ws.onerror = () => ws.close();
  }

  retry(ws) {
    if (ws !== this.ws) return;
    clearInterval(this.ping);
    this.onStatus('reconnecting');
    setTimeout(() => this.connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 4000);
  }

  receive(bytes) {
    const all = new Uint8Array(this.buf.length + bytes.length);
    all.set(this.buf);
    all.set(bytes, this.buf.length);
    let off = 0;
    for (;;) {
      if (all.length - off < 2) break;
      let len = 0, mul = 1, i = off + 1, d;
      do {
        if (i >= all.length) { i = -1; break; }
        d = all[i++];
        len += (d & 127) * mul;
        mul *= 128;
      } while (d & 128);
      if (i < 0 || i + len > all.length) break;
      this.handle(all[off], all.subarray(i, i + len));
      off = i + len;
    }
    this.buf = all.slice(off);
  }

  handle(header, body) {
    switch (header >> 4) {
      case 2: // CONNACK
        if (body[1] !== 0) { this.ws.close(); return; }
        this.backoff = 250;
        const pid = (this.packetId++ % 65535) + 1;
        this.ws.send(packet(0x82, [pid >> 8, pid & 255, ...utf8(this.filter), 0]));
        this.ping = setInterval(() => this.ws.send(new Uint8Array([0xc0, 0])), 20000);
        break;
      case 9: // SUBACK
        this.onStatus(body[2] === 0x80 ? 'refused' : 'live');
        break;
      case 3: { // PUBLISH
        const qos = (header >> 1) & 3;
        const tlen = (body[0] << 8) | body[1];
        const topic = dec.decode(body.subarray(2, 2 + tlen));
        const payload = dec.decode(body.subarray(2 + tlen + (qos > 0 ? 2 : 0)));
        this.onMessage(topic, payload);
        break;
      }
    }
  }

  // publish sends text to topic at QoS 0; false when not connected.
  publish(topic, text) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(packet(0x30, [...utf8(topic), ...enc.encode(text)]));
    return true;
  }
}
