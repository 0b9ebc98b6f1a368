// What the page needs of AWS when it is served by the stack (CloudFront)
// rather than by tapline demo: an operator's sign-in (Cognito's hosted
// page, authorization code with PKCE), temporary credentials for the
// identity pool's dashboard role, and AWS Signature Version 4 (a
// presigned IoT WebSocket URL; signed requests to the commander's URL).
// WebCrypto does the hashing; nothing else is imported.
'use strict';

const enc = new TextEncoder();
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
export async function sha256(data) {
  return hex(await crypto.subtle.digest('SHA-256', typeof data === 'string' ? enc.encode(data) : data));
}
async function hmac(key, data) {
  const k = await crypto.subtle.importKey('raw', typeof key === 'string' ? enc.encode(key) : key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return crypto.subtle.sign('HMAC', k, enc.encode(data));
}
// RFC 3986 encoding, as SigV4 wants it.
export const uriEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function stamp(date) {
  const iso = date.toISOString().replace(/[:-]|\.\d{3}/g, '');
  return { amzDate: iso, day: iso.slice(0, 8) };
}

async function signingKey(secret, day, region, service) {
  const k1 = await hmac('AWS4' + secret, day);
  const k2 = await hmac(k1, region);
  const k3 = await hmac(k2, service);
  return hmac(k3, 'aws4_request');
}

// presign returns url (wss://host/path) signed in its query for service
// in region, valid for expires seconds from date. IoT Core wants the
// session token added after signing, not signed: withTokenAfter.
export async function presign(url, { accessKeyId, secretAccessKey, sessionToken }, region, service, date, expires = 300, withTokenAfter = true) {
  const u = new URL(url);
  const { amzDate, day } = stamp(date);
  const scope = `${day}/${region}/${service}/aws4_request`;
  const params = { 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256', 'X-Amz-Credential': `${accessKeyId}/${scope}`, 'X-Amz-Date': amzDate,
    'X-Amz-Expires': String(expires), 'X-Amz-SignedHeaders': 'host' };
  if (sessionToken && !withTokenAfter) params['X-Amz-Security-Token'] = sessionToken;
  const query = Object.keys(params).sort().map((k) => `${uriEncode(k)}=${uriEncode(params[k])}`).join('&');
  const canonical = ['GET', u.pathname, query, `host:${u.host}\n`, 'host', await sha256('')].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, await sha256(canonical)].join('\n');
  const sig = hex(await hmac(await signingKey(secretAccessKey, day, region, service), toSign));
  let out = `${u.protocol}//${u.host}${u.pathname}?${query}&X-Amz-Signature=${sig}`;
  if (sessionToken && withTokenAfter) out += `&X-Amz-Security-Token=${uriEncode(sessionToken)}`;
  return out;
}

// signedHeaders returns the headers of a SigV4-signed POST of body
// (a string) to url: what the commander's IAM-authenticated URL wants.
export async function signedHeaders(url, body, { accessKeyId, secretAccessKey, sessionToken }, region, service, date) {
  const u = new URL(url);
  const { amzDate, day } = stamp(date);
  const scope = `${day}/${region}/${service}/aws4_request`;
  const payloadHash = await sha256(body);
  const headers = { 'content-type': 'application/json', host: u.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': amzDate };
  if (sessionToken) headers['x-amz-security-token'] = sessionToken;
  const names = Object.keys(headers).sort();
  const query = [...u.searchParams.entries()].map(([k, v]) => [uriEncode(k), uriEncode(v)]).sort().map(([k, v]) => `${k}=${v}`).join('&');
  const canonical = ['POST', u.pathname || '/', query, names.map((n) => `${n}:${headers[n]}\n`).join(''), names.join(';'), payloadHash].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, await sha256(canonical)].join('\n');
  const sig = hex(await hmac(await signingKey(secretAccessKey, day, region, service), toSign));
  const out = { ...headers, authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${sig}` };
  delete out.host; // the browser sets it
  return out;
}

const b64url = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

// signIn returns the signed-in operator's tokens ({idToken,
// refreshToken, expires}), sending the browser to Cognito's hosted
// sign-in page first when there are none. The tokens stay in memory.
export async function signIn(cfg) {
  const here = location.origin + location.pathname;
  const code = new URLSearchParams(location.search).get('code');
  const verifier = sessionStorage.getItem('tapline.verifier');
  if (code && verifier) {
    history.replaceState(null, '', here);
    const res = await fetch(`${cfg.auth_domain}/oauth2/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', client_id: cfg.client_id, code, redirect_uri: here, code_verifier: verifier }),
    });
    if (!res.ok) throw new Error('sign-in: ' + res.status);
    return tokens(await res.json());
  }
  const v = b64url(crypto.getRandomValues(new Uint8Array(32)));
  sessionStorage.setItem('tapline.verifier', v);
  const challenge = b64url(await crypto.subtle.digest('SHA-256', enc.encode(v)));
  location.assign(`${cfg.auth_domain}/oauth2/authorize?` + new URLSearchParams({ response_type: 'code', client_id: cfg.client_id,
    redirect_uri: here, scope: 'openid email', code_challenge: challenge, code_challenge_method: 'S256' }));
  return new Promise(() => {}); // the page is leaving
}

function tokens(t, refreshToken) {
  return { idToken: t.id_token, refreshToken: t.refresh_token || refreshToken, expires: Date.now() + t.expires_in * 1000 };
}

// refresh returns tokens with an id token valid for a minute at least:
// Cognito's last an hour, and an operator keeps the page open all day.
export async function refresh(cfg, t) {
  if (Date.now() < t.expires - 60000) return t;
  const res = await fetch(`${cfg.auth_domain}/oauth2/token`, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', client_id: cfg.client_id, refresh_token: t.refreshToken }),
  });
  if (!res.ok) throw new Error('token refresh: ' + res.status);
  return tokens(await res.json(), t.refreshToken);
}

async function identity(cfg, target, body) {
  const res = await fetch(`https://cognito-identity.${cfg.region}.amazonaws.com/`, {
    method: 'POST', headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'AWSCognitoIdentityService.' + target },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${target}: ${res.status}`);
  return res.json();
}

// credentials trades the id token for the dashboard role's temporary
// credentials (the identity pool admits no unauthenticated identity).
export async function credentials(cfg, idToken) {
  const logins = { [`cognito-idp.${cfg.region}.amazonaws.com/${cfg.user_pool}`]: idToken };
  const { IdentityId } = await identity(cfg, 'GetId', { IdentityPoolId: cfg.identity_pool, Logins: logins });
  const { Credentials: c } = await identity(cfg, 'GetCredentialsForIdentity', { IdentityId, Logins: logins });
  return { identityId: IdentityId, accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretKey, sessionToken: c.SessionToken, expires: c.Expiration * 1000 };
}
