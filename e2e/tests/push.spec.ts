// Web Push from a rollback to a notification on the device: the console
// subscribes this browser (Chromium's PushManager only talks to Google's
// push service, so `subscribe` is stubbed to hand out a subscription at a
// fake push service on loopback, with keys made here), the server sends the
// rollback's alert there, this file decrypts it with its own RFC 8291 code
// (an implementation independent of the server's), and the DevTools
// protocol delivers it to the console's real service worker, whose
// notification and click are checked.
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { CDPSession, Page } from '@playwright/test';
import { test as base, expect } from '../fixtures/canary';

/** A message the fake push service took. */
interface Taken {
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** An RFC 8030 push service on loopback that takes every message (201). */
class FakePushService {
  taken: Taken[] = [];
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      this.taken.push({ headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(201, { location: '/message/1' });
      res.end();
    });
  });
  port = 0;

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const hmac = (key: Buffer, data: Buffer): Buffer => crypto.createHmac('sha256', key).update(data).digest();

/** RFC 8291 (aes128gcm, one record) as a browser decrypts a push message. */
function decrypt(body: Buffer, device: crypto.ECDH, auth: Buffer): string {
  const salt = body.subarray(0, 16);
  const idLength = body[20];
  const serverKey = body.subarray(21, 21 + idLength);
  const record = body.subarray(21 + idLength);
  const shared = device.computeSecret(serverKey);
  const info = Buffer.concat([Buffer.from('WebPush: info\0'), device.getPublicKey(), serverKey, Buffer.from([1])]);
  const ikm = hmac(hmac(auth, shared), info);
  const prk = hmac(salt, ikm);
  const key = hmac(prk, Buffer.from('Content-Encoding: aes128gcm\0\x01', 'latin1')).subarray(0, 16);
  const nonce = hmac(prk, Buffer.from('Content-Encoding: nonce\0\x01', 'latin1')).subarray(0, 12);
  const decipher = crypto.createDecipheriv('aes-128-gcm', key, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  // The last record ends with the delimiter 2, then zero padding.
  let end = padded.length - 1;
  while (end > 0 && padded[end] === 0) end -= 1;
  expect(padded[end]).toBe(2);
  return padded.subarray(0, end).toString('utf8');
}

const test = base.extend<{ pushService: FakePushService }>({
  pushService: async ({}, use) => {
    const service = new FakePushService();
    await service.start();
    await use(service);
    await service.stop();
  },
  extraConfig: async ({ pushService }, use) => {
    await use(`push:\n  contact: "mailto:oncall@example.com"\n  services: ["${pushService.origin}"]\n`);
  },
});

/**
 * The console's service worker registration id, from the DevTools protocol,
 * once its worker is activated: a push delivered to a registration whose
 * worker is still installing is not shown.
 */
async function registrationId(cdp: CDPSession, scope: string): Promise<string> {
  return new Promise((resolve) => {
    let id: string | undefined;
    const activated = new Set<string>();
    const settle = () => {
      if (id !== undefined && activated.has(id)) resolve(id);
    };
    cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
      const found = registrations.find((registration: { scopeURL: string; isDeleted: boolean }) => registration.scopeURL === scope && !registration.isDeleted);
      if (found) id = found.registrationId;
      settle();
    });
    cdp.on('ServiceWorker.workerVersionUpdated', ({ versions }) => {
      for (const version of versions as { registrationId: string; status: string }[]) {
        if (version.status === 'activated') activated.add(version.registrationId);
      }
      settle();
    });
    void cdp.send('ServiceWorker.enable');
  });
}

async function notifications(page: Page) {
  return page.evaluate(async () => {
    const registration = await navigator.serviceWorker.ready;
    return (await registration.getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag, url: n.data?.url }));
  });
}

test('a rollback reaches a subscribed device as a notification that opens the console', async ({ page, context, setup, pushService, dashboard }, testInfo) => {
  const device = crypto.createECDH('prime256v1');
  device.generateKeys();
  const auth = crypto.randomBytes(16);
  await context.grantPermissions(['notifications']);
  await page.addInitScript(
    ({ endpoint, p256dh, auth }) => {
      let held: object | null = null;
      // What PushManager.subscribe gives a page, pointed at the fake service.
      PushManager.prototype.subscribe = async function (options?: PushSubscriptionOptionsInit) {
        (window as unknown as { askedWith: unknown }).askedWith = options?.applicationServerKey;
        held = { endpoint, options: {}, toJSON: () => ({ endpoint, expirationTime: null, keys: { p256dh, auth } }), unsubscribe: async () => ((held = null), true) };
        return held as PushSubscription;
      };
      PushManager.prototype.getSubscription = async function () {
        return held as PushSubscription | null;
      };
    },
    { endpoint: `${pushService.origin}/push/tablet`, p256dh: device.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
  );
  await page.reload();
  await expect(dashboard.connection).toHaveText('Live');

  // Subscribe from the card: breaches and rollbacks, the default.
  await page.getByTestId('push').locator('summary').click();
  await page.getByTestId('push-save').click();
  await expect(page.getByTestId('push-note')).toContainText('Saved: this device gets these alerts');
  await expect(page.getByTestId('push-device')).toHaveCount(1);
  await expect(page.getByTestId('push-device')).toContainText('safety breaches, rollbacks');
  await expect(page.getByTestId('push-device')).toContainText('(this device)');
  const publicKey = (await (await page.request.get(`${setup.server.consoleUrl}push`)).json()).public_key;
  expect(await page.evaluate(() => (window as unknown as { askedWith: unknown }).askedWith)).toBe(publicKey);
  await dashboard.screenshot(testInfo, 'push-subscribed');

  // A rollout that is stopped: the device is told, with the reason.
  await dashboard.startCanary('v2.7.0', '25');
  await expect(dashboard.statusLine).toContainText('Canary at 25 %', { timeout: 20_000 });
  expect(pushService.taken).toHaveLength(0);
  const stopped = await page.request.post(`${setup.server.consoleUrl}stop`, { data: { reason: 'errors in the checkout logs' } });
  expect(stopped.ok()).toBe(true);
  await expect.poll(() => pushService.taken.length).toBe(1);
  const [message] = pushService.taken;
  expect(message.headers['urgency']).toBe('high');
  expect(message.headers['topic']).toBe('canary-rollback');
  expect(message.headers['content-encoding']).toBe('aes128gcm');
  expect(String(message.headers['authorization'])).toContain(`k=${publicKey}`);
  const alert = decrypt(message.body, device, auth);
  expect(JSON.parse(alert)).toMatchObject({ event: 'rolled_back', url: new URL(setup.server.consoleUrl).pathname });

  // The push service delivers it: the real service worker shows it.
  const cdp = await context.newCDPSession(page);
  const scope = setup.server.consoleUrl;
  const id = await registrationId(cdp, scope);
  await cdp.send('ServiceWorker.deliverPushMessage', { origin: new URL(scope).origin, registrationId: id, data: alert });
  await expect.poll(() => notifications(page)).toHaveLength(1);
  const [shown] = await notifications(page);
  expect(shown.title).toBe('Canary v2.7.0 rolled back');
  expect(shown.body).toContain('errors in the checkout logs');
  expect(shown.body).toContain('25 % → 0 %');
  expect(shown.url).toBe(scope);

  // A tap with no console open opens one at the rollout. Chromium lets a
  // worker open a window only during a real tap, which no protocol command
  // makes, so the browser's openWindow is recorded instead; the handler's
  // choice of window and address is the worker's own.
  const worker = context.serviceWorkers().find((candidate) => candidate.url().startsWith(scope));
  expect(worker).toBeDefined();
  await page.goto('about:blank');
  const opened = await worker!.evaluate(async () => {
    const scope = self as unknown as ServiceWorkerGlobalScope;
    let asked = '';
    Object.defineProperty(scope.clients, 'openWindow', { value: async (url: string) => ((asked = url), null) });
    const [notification] = await scope.registration.getNotifications();
    const click = new NotificationEvent('notificationclick', { notification });
    scope.dispatchEvent(click);
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { asked, left: (await scope.registration.getNotifications()).length };
  });
  expect(opened).toEqual({ asked: scope, left: 0 });
});
