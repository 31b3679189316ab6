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
import type { CDPSession, Page, TestInfo } from '@playwright/test';
import { test as base, expect } from '../fixtures/canary';

/** A message the fake push service took. */
interface Taken {
  path: string;
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
      this.taken.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
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

/** A browser's push keys, made here so this file can decrypt what it gets. */
interface DeviceKeys {
  device: crypto.ECDH;
  auth: Buffer;
}

/**
 * Stubs this page's PushManager so that subscribing hands out a
 * subscription at `endpoint` on the fake push service with fresh keys.
 */
async function stubPushManager(page: Page, endpoint: string): Promise<DeviceKeys> {
  const device = crypto.createECDH('prime256v1');
  device.generateKeys();
  const auth = crypto.randomBytes(16);
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
    { endpoint, p256dh: device.getPublicKey().toString('base64url'), auth: auth.toString('base64url') },
  );
  return { device, auth };
}

/**
 * Delivers a push message through the DevTools protocol and waits for the
 * worker to show it. The protocol says nothing when a delivery goes
 * nowhere, and one CI run saw a delivery on the tablet project show
 * nothing for 15 s (never reproduced here): a delivery that shows nothing
 * within 5 s is made again, twice at most, and the test says so in its
 * annotations, so a worker that never shows the alert still fails.
 */
async function deliver(
  cdp: CDPSession,
  page: Page,
  message: { origin: string; registrationId: string; data: string },
  testInfo: TestInfo,
): Promise<void> {
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    await cdp.send('ServiceWorker.deliverPushMessage', message);
    try {
      await expect.poll(() => notifications(page), { timeout: 5_000 }).toHaveLength(1);
      if (attempt > 1) testInfo.annotations.push({ type: 'push delivered again', description: `shown after delivery ${attempt}` });
      return;
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

test('a rollback reaches a subscribed device as a notification that opens the console', async ({ page, context, setup, pushService, dashboard }, testInfo) => {
  await context.grantPermissions(['notifications']);
  const { device, auth } = await stubPushManager(page, `${pushService.origin}/push/tablet`);
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
  await deliver(cdp, page, { origin: new URL(scope).origin, registrationId: id, data: alert }, testInfo);
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

test('a subscription the browser renews reaches the server, and a tap with the console open focuses it', async ({ page, context, setup, pushService, dashboard }) => {
  await context.grantPermissions(['notifications']);
  const endpoint = `${pushService.origin}/push/tablet`;
  await stubPushManager(page, endpoint);
  await page.reload();
  await expect(dashboard.connection).toHaveText('Live');
  await page.getByTestId('push').locator('summary').click();
  await page.getByTestId('push-save').click();
  await expect(page.getByTestId('push-device')).toHaveCount(1);
  const scope = setup.server.consoleUrl;
  const worker = context.serviceWorkers().find((candidate) => candidate.url().startsWith(scope));
  expect(worker).toBeDefined();

  // The push service moved the device to a new endpoint with new keys: the
  // browser tells the worker, which tells the server at once.
  const renewed = crypto.createECDH('prime256v1');
  renewed.generateKeys();
  const renewedAuth = crypto.randomBytes(16);
  const fresh = { endpoint: `${pushService.origin}/push/tablet-renewed`, keys: { p256dh: renewed.getPublicKey().toString('base64url'), auth: renewedAuth.toString('base64url') } };
  const status = await worker!.evaluate(
    async ({ old, fresh }) => {
      const scope = self as unknown as ServiceWorkerGlobalScope;
      // PushSubscriptionChangeEvent takes only the browser's own
      // subscriptions, so the event is a plain one with the same fields.
      const event = new Event('pushsubscriptionchange');
      let done: Promise<unknown> = Promise.resolve();
      Object.defineProperty(event, 'oldSubscription', { value: { endpoint: old, options: {} } });
      Object.defineProperty(event, 'newSubscription', { value: { endpoint: fresh.endpoint, toJSON: () => ({ ...fresh, expirationTime: null }) } });
      Object.defineProperty(event, 'waitUntil', { value: (promise: Promise<unknown>) => (done = promise) });
      const posted: number[] = [];
      const realFetch = scope.fetch.bind(scope);
      scope.fetch = async (input, init) => {
        const response = await realFetch(input, init);
        posted.push(response.status);
        return response;
      };
      scope.dispatchEvent(event);
      await done;
      scope.fetch = realFetch;
      return posted;
    },
    { old: endpoint, fresh },
  );
  expect(status).toEqual([201]);
  const devices = (await (await page.request.get(`${scope}push`)).json()).devices;
  expect(devices).toHaveLength(1);
  expect(devices[0].events).toEqual(['breach', 'rolled_back']);

  // Alerts now go to the new endpoint, encrypted to the new keys.
  const tested = await page.request.post(`${scope}push/devices/${devices[0].id}/test`);
  expect(tested.ok()).toBe(true);
  await expect.poll(() => pushService.taken.length).toBe(1);
  expect(pushService.taken[0].path).toBe('/push/tablet-renewed');
  expect(JSON.parse(decrypt(pushService.taken[0].body, renewed, renewedAuth))).toMatchObject({ url: new URL(scope).pathname });

  // A tap while the console is open brings that window forward instead of
  // opening another.
  const tapped = await worker!.evaluate(async () => {
    const scope = self as unknown as ServiceWorkerGlobalScope;
    const seen = { focused: '', opened: '' };
    Object.defineProperty(WindowClient.prototype, 'focus', {
      configurable: true,
      value: async function (this: WindowClient) {
        seen.focused = this.url;
        return this;
      },
    });
    Object.defineProperty(scope.clients, 'openWindow', { value: async (url: string) => ((seen.opened = url), null) });
    await scope.registration.showNotification('Canary v2.7.0 rolled back', { data: { url: scope.registration.scope } });
    const [notification] = await scope.registration.getNotifications();
    scope.dispatchEvent(new NotificationEvent('notificationclick', { notification }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    return seen;
  });
  expect(tapped.opened).toBe('');
  expect(tapped.focused.startsWith(scope), `focused ${tapped.focused || 'nothing'}`).toBe(true);
});
