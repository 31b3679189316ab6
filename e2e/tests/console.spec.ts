// The console as an operator sees it: live state over the WebSocket, and a
// connection that recovers by itself.
import { expect, test, type Dashboard } from '../fixtures/canary';

type Raised = { title: string; body?: string };

/** Replaces the browser's Notification with one that records what is raised, then reloads. */
async function recordNotifications(dashboard: Dashboard): Promise<void> {
  await dashboard.page.addInitScript(() => {
    const raised: { title: string; body?: string }[] = [];
    class RecordedNotification {
      static permission = 'default';
      static async requestPermission() {
        RecordedNotification.permission = 'granted';
        return 'granted';
      }
      constructor(title: string, options?: { body?: string }) {
        raised.push({ title, body: options?.body });
      }
      close() {}
    }
    Object.assign(window, { Notification: RecordedNotification, raisedNotifications: raised });
  });
  await dashboard.page.reload();
}

function raisedNotifications(dashboard: Dashboard): Promise<Raised[]> {
  return dashboard.page.evaluate(() => (window as unknown as { raisedNotifications: Raised[] }).raisedNotifications);
}

test('shows the rollout and follows upstream health live', async ({ dashboard, setup }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  await expect(dashboard.statusLine).toHaveText('Production only (100 %)');
  await expect(dashboard.version('production')).toHaveText('v2.6.0');
  await expect(dashboard.share('production')).toHaveText('100 %');
  await expect(dashboard.share('canary')).toHaveText('0 %');
  await expect(dashboard.health('production')).toHaveText('Healthy');
  await expect(dashboard.healthDetail('production')).toHaveText('HTTP 200 from /healthz');
  await expect(dashboard.health('canary')).toHaveText('Stopped');
  // Only Start is possible before a canary runs; the others say why not.
  await expect(dashboard.action('start')).toBeEnabled();
  await expect(dashboard.action('stop')).toBeDisabled();
  // Each disabled control says why beside it.
  await expect(dashboard.page.getByTestId('reason-stop')).toHaveText('no canary is running');
  await expect(dashboard.page.getByTestId('reason-start')).toBeHidden();
  await expect(dashboard.page.getByTestId('reason-steps')).toContainText('Promote: not possible while idle');
  await expect(dashboard.page).toHaveTitle('Production only (100 %) · canary');
  // Help is folded away until asked for.
  const help = dashboard.page.getByTestId('help');
  await expect(help.getByText('The share of requests that failed')).toBeHidden();
  await help.locator('summary').click();
  await expect(help.getByText('The share of requests that failed')).toBeVisible();
  await help.locator('summary').click();
  await dashboard.screenshot(testInfo, 'idle');

  // The production service starts failing its health checks: the card changes
  // without a reload, driven by the WebSocket stream.
  setup.production.setHealth(503);
  await expect(dashboard.health('production')).toHaveText('Unhealthy');
  await expect(dashboard.healthDetail('production')).toHaveText('HTTP 503 from /healthz');
  await dashboard.screenshot(testInfo, 'production-unhealthy');

  setup.production.setHealth(200);
  await expect(dashboard.health('production')).toHaveText('Healthy');
});

test('marks data stale while the server is away and refreshes when it is back', async ({ dashboard, setup }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  await expect(dashboard.health('production')).toHaveText('Healthy');

  await setup.server.stop();
  await expect(dashboard.connection).toContainText('Reconnecting');
  await expect(dashboard.staleNote).toHaveText('Not live: showing the last known state');
  await expect(dashboard.page).toHaveTitle(/^\(offline\)/);
  await dashboard.screenshot(testInfo, 'reconnecting');

  // While the server was away production broke; the fresh snapshot must show it.
  setup.production.setHealth(500);
  await setup.server.start();
  await expect(dashboard.connection).toHaveText('Live', { timeout: 30_000 });
  await expect(dashboard.staleNote).toBeEmpty();
  await expect(dashboard.health('production')).toHaveText('Unhealthy');
  await expect(dashboard.healthDetail('production')).toHaveText('HTTP 500 from /healthz');
});

test('starts a canary, moves its share, and stops it, all confirmed and audited', async ({ dashboard, setup }, testInfo) => {
  // The browser's notifications, recorded instead of shown: the operator
  // turns alerts on, and the rollback below must raise one.
  await recordNotifications(dashboard);

  await dashboard.page.getByTestId('alerts-enable').click();
  await expect(dashboard.page.getByTestId('alerts-status')).toHaveText('Alerts on');
  await expect(dashboard.connection).toHaveText('Live');
  await dashboard.startCanary('v2.7.0', '5');
  await expect(dashboard.statusLine).toContainText('Canary at 5 %', { timeout: 20_000 });
  await expect(dashboard.share('canary')).toHaveText('5 %');
  await expect(dashboard.health('canary')).toHaveText('Healthy');
  await expect(dashboard.auditEntries.first()).toContainText('Healthy');

  await dashboard.fillScale('25');
  // State updates keep arriving while the operator types; they must not wipe the entry.
  await setup.server.sendTraffic(100);
  await expect(dashboard.page.getByTestId('production-requests')).not.toHaveText('0', { timeout: 15_000 });
  await dashboard.page.getByTestId('scale-review').click();
  await expect(dashboard.page.getByTestId('scale-split')).toHaveText('Canary 25 % · Production 75 %');
  await expect(dashboard.page.getByTestId('scale-question')).toHaveText('Move canary from 5 % to 25 %?');
  await dashboard.screenshot(testInfo, 'scale-confirm');
  await dashboard.page.getByTestId('scale-confirm').click();
  await expect(dashboard.share('canary')).toHaveText('25 %');
  await expect(dashboard.share('production')).toHaveText('75 %');
  await expect(dashboard.statusLine).toContainText('Canary at 25 %');

  // The proxy really sends about a quarter of new clients to the canary.
  const after = await setup.server.sendTraffic(400);
  const canaryShare = (after['v2.7.0'] ?? 0) / 400;
  expect(canaryShare).toBeGreaterThan(0.15);
  expect(canaryShare).toBeLessThan(0.35);
  await expect(dashboard.page.getByTestId('canary-requests')).not.toHaveText('0', { timeout: 15_000 });
  // Both sides' lines are drawn on every chart, with the current values beside them.
  for (const chart of ['latency', 'success', 'errors', 'requests'] as const) {
    await expect
      .poll(async () => {
        const ink = await dashboard.chartInk(chart);
        return ink.production > 0 && ink.canary > 0;
      }, { message: `${chart} chart draws both sides`, timeout: 15_000 })
      .toBe(true);
  }
  await expect(dashboard.page.getByTestId('chart-success-production')).toHaveText('100 %');
  await expect(dashboard.page.getByTestId('chart-latency-canary')).toHaveText(/ms$/);
  await dashboard.page.getByTestId('latency-p99').click();
  await expect(dashboard.page.getByTestId('chart-latency')).toContainText('Latency (p99)');
  await dashboard.screenshot(testInfo, 'progressing');

  // Continue, beside the step in progress, walks to the next configured step.
  await dashboard.page.getByTestId('step-continue').click();
  await expect(dashboard.share('canary')).toHaveText('50 %');
  // Stop & roll back beside the step asks first; the operator thinks again.
  await dashboard.page.getByTestId('step-rollback').click();
  await expect(dashboard.page.getByTestId('confirm-question')).toContainText('50 %');
  await expect(dashboard.page.getByTestId('confirm-panel')).toBeInViewport();
  await dashboard.page.getByTestId('confirm-no').click();
  await expect(dashboard.share('canary')).toHaveText('50 %');

  // Emergency stop stays on screen however far the operator scrolled; it
  // asks first, then takes all traffic off the canary.
  await dashboard.page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  const headerStop = dashboard.page.getByTestId('header-stop');
  await expect(headerStop).toBeInViewport();
  await headerStop.click();
  await expect(dashboard.page.getByTestId('confirm-panel')).toBeInViewport();
  await expect(dashboard.page.getByTestId('confirm-question')).toHaveText('Emergency stop: move the canary from 50 % to 0 % now?');
  await dashboard.page.getByTestId('stop-reason').fill('errors in the logs');
  await dashboard.screenshot(testInfo, 'stop-confirm');
  await dashboard.page.getByTestId('confirm-yes').click();
  await expect(dashboard.share('canary')).toHaveText('0 %');
  await expect(dashboard.statusLine).toHaveText('Rolled back: errors in the logs', { timeout: 15_000 });
  await expect(dashboard.page).toHaveTitle('🔴 Rolled back: errors in the logs · canary');
  await expect(headerStop).toBeHidden();
  await expect(dashboard.auditEntries.filter({ hasText: 'Stop' })).toContainText('errors in the logs');
  // The trail filters: the controller's own decisions, then one person's.
  await dashboard.page.getByTestId('audit-kind-automatic').click();
  await expect(dashboard.auditEntries.filter({ hasText: 'Stop' })).toHaveCount(0);
  await expect(dashboard.auditEntries.first()).toContainText('by controller');
  await dashboard.page.getByTestId('audit-kind-all').click();
  await dashboard.page.getByTestId('audit-actor').selectOption('local');
  await expect(dashboard.auditEntries.filter({ hasText: 'by controller' })).toHaveCount(0);
  await expect(dashboard.auditEntries.filter({ hasText: 'Stop' })).toHaveCount(1);
  await dashboard.page.getByTestId('audit-actor').selectOption('');
  // Exactly one alert: the rollback; the start and the moves stay quiet.
  const raised = () => raisedNotifications(dashboard);
  await expect.poll(raised).toHaveLength(1);
  const [alert] = await raised();
  expect(alert.title).toBe('Canary v2.7.0 rolled back');
  expect(alert.body).toMatch(/^errors in the logs\nStop: 50 % → 0 %, by /);
  const traffic = await setup.server.sendTraffic(100);
  expect(traffic['v2.7.0'] ?? 0).toBe(0);
  await dashboard.screenshot(testInfo, 'rolled-back');
});

test('a failed move shows the reason and changes nothing', async ({ dashboard, setup }) => {
  await expect(dashboard.connection).toHaveText('Live');
  await dashboard.startCanary('v2.7.0', '5');
  await expect(dashboard.statusLine).toContainText('Canary at 5 %', { timeout: 20_000 });
  await dashboard.reviewScale('40');
  await setup.server.stop();
  await dashboard.page.getByTestId('scale-confirm').click();
  await expect(dashboard.page.getByTestId('scale-error')).toContainText('could not be reached');
  await expect(dashboard.share('canary')).toHaveText('5 %');
});

test('a failing canary is rolled back by itself, with the reason, the audit entry and an alert', async ({ dashboard, setup }, testInfo) => {
  await recordNotifications(dashboard);
  await dashboard.page.getByTestId('alerts-enable').click();
  await expect(dashboard.connection).toHaveText('Live');
  await dashboard.startCanary('v2.7.0', '50');
  await expect(dashboard.statusLine).toContainText('Canary at 50 %', { timeout: 20_000 });

  // The new version starts failing its requests (its health check still passes).
  setup.canary.setResponseStatus(500);
  await setup.server.sendTraffic(200);
  await expect(dashboard.statusLine).toContainText(/Rolled back: .*(success|error) rate/i, { timeout: 20_000 });
  await expect(dashboard.share('canary')).toHaveText('0 %');
  const decision = dashboard.auditEntries.filter({ hasText: 'Auto rollback' });
  await expect(decision).toContainText('by controller');
  await expect(decision).toContainText(/(success|error) rate/i);
  await expect(dashboard.page).toHaveTitle(/^🔴 Rolled back/);
  await expect.poll(async () => (await raisedNotifications(dashboard)).map((alert) => alert.title)).toContain(
    'Safety breach: canary v2.7.0 rolled back',
  );
  // The safety panel explains the decision in words, with both sides' figures of that moment.
  const explained = dashboard.page.getByTestId('decision').first();
  await expect(explained).toContainText('Auto rollback');
  await expect(explained).toContainText(/(success|error) rate/i);
  await expect(explained).toContainText(/Canary: p95 .* · errors [1-9][0-9.]* % · [0-9,]+ requests in the last minute/);
  await expect(explained).toContainText(/Production: p95 .* · errors 0 %/);
  await explained.scrollIntoViewIfNeeded();
  await dashboard.screenshot(testInfo, 'auto-rollback-explained');
  // The charts show why: the canary's error rate against production's.
  await expect(dashboard.page.getByTestId('chart-errors-canary')).not.toHaveText('0 %');
  await dashboard.screenshot(testInfo, 'auto-rolled-back');
  const after = await setup.server.sendTraffic(50);
  expect(after['v2.7.0'] ?? 0).toBe(0);
});

test('a promotion is undone from the console while the previous version stands by', async ({ dashboard, setup }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  await dashboard.startCanary('v2.7.0', '50');
  await expect(dashboard.statusLine).toContainText('Canary at 50 %', { timeout: 20_000 });
  const undo = dashboard.page.getByTestId('action-undo-promotion');
  await expect(undo).toBeHidden();
  await dashboard.action('promote').click();
  await dashboard.page.getByTestId('confirm-yes').click();
  await expect(dashboard.statusLine).toContainText(/Promoted v2.7.0: .*undo possible for/, { timeout: 20_000 });
  const promoted = await setup.server.sendTraffic(40);
  expect(promoted['v2.7.0']).toBe(40);

  // The previous version still runs, and the console says for how long.
  await expect(undo).toBeEnabled();
  await expect(dashboard.page.getByTestId('undo-standby')).toHaveText(/^v2.6.0 stands by on http:\/\/127.0.0.1:\d+ for (1 h|59 min) more$/);
  await expect(dashboard.version('canary')).toHaveText('v2.6.0');
  await dashboard.screenshot(testInfo, 'promoted-undo-offered');
  await undo.click();
  await expect(dashboard.page.getByTestId('confirm-question')).toHaveText(
    'Undo the promotion of v2.7.0: send all traffic back to v2.6.0 now? v2.7.0 is then rolled back.',
  );
  await dashboard.page.getByTestId('stop-reason').fill('memory grows after an hour');
  await dashboard.page.getByTestId('confirm-yes').click();
  await expect(dashboard.statusLine).toHaveText('Rolled back: memory grows after an hour', { timeout: 15_000 });
  await expect(undo).toBeHidden();
  await expect(dashboard.version('production')).toHaveText('v2.6.0');
  await expect(dashboard.auditEntries.filter({ hasText: 'memory grows after an hour' }).first()).toContainText('Undo promotion');
  const after = await setup.server.sendTraffic(40);
  expect(after['v2.6.0']).toBe(40);
});

test('auto-progression is switched off and on for one rollout, and the settings behind it are one fold away', async ({ dashboard }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  const words = dashboard.page.getByTestId('auto-progression-words');
  const toggle = dashboard.page.getByTestId('auto-progression-switch');
  await expect(words).toHaveText('On: each step of a rollout moves on after 24 h of green checks.');
  await expect(toggle).toBeDisabled();
  await dashboard.startCanary('v2.7.0', '5');
  await expect(dashboard.statusLine).toContainText('Canary at 5 %', { timeout: 20_000 });
  await expect(toggle).toHaveAttribute('aria-checked', 'true');
  await expect(words).toContainText(/^On: the (next step in|24 h wait)/);

  await toggle.click();
  await expect(toggle).toHaveAttribute('aria-checked', 'false');
  await expect(words).toHaveText('Off: steps move on only when an operator continues. (changed for this rollout)');
  await expect(dashboard.statusLine).toHaveText(/waiting for an operator to continue|holding:/);
  await expect(dashboard.auditEntries.first()).toContainText('Auto progression off');
  await expect(dashboard.auditEntries.first()).toContainText('by local');
  await dashboard.page.getByTestId('auto-progression').scrollIntoViewIfNeeded();
  await dashboard.screenshot(testInfo, 'auto-progression-off');
  await toggle.click();
  await expect(toggle).toHaveAttribute('aria-checked', 'true');
  await expect(dashboard.auditEntries.first()).toContainText('Auto progression on');

  // Advanced settings stay folded until asked for.
  const settings = dashboard.page.getByTestId('settings');
  const list = dashboard.page.getByTestId('settings-list');
  await expect(list).toBeHidden();
  await settings.locator('summary').click();
  await expect(list).toContainText('5 % → 25 % → 50 % → 100 %');
  await expect(list).toContainText('On: each step moves on after 24 h of green checks.');
  await expect(list).toContainText('Cookie canary_bucket for 24 h');
  await expect(list).toContainText('Statistical judge');
  await expect(list).toContainText('Off: only the safety checks decide.');
  await list.scrollIntoViewIfNeeded();
  await dashboard.screenshot(testInfo, 'settings');
});

test('the share slider is dragged (by finger on a tablet) and the move confirmed', async ({ dashboard, setup }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  await dashboard.startCanary('v2.7.0', '5');
  await expect(dashboard.statusLine).toContainText('Canary at 5 %', { timeout: 20_000 });
  await dashboard.action('scale').click();
  const slider = dashboard.page.getByTestId('scale-range');
  await slider.scrollIntoViewIfNeeded();
  // The page above keeps changing height (the status line's words change
  // every second), so positions are taken from the slider at the moment of
  // each action, relative to it.
  if (testInfo.project.use.hasTouch) {
    const box = (await slider.boundingBox())!;
    const y = box.y + box.height / 2;
    // The thumb sits at 5 %; drag it to about 60 % of the track.
    const from = box.x + box.width * 0.05;
    const to = box.x + box.width * 0.6;
    const cdp = await dashboard.page.context().newCDPSession(dashboard.page);
    const touch = (type: string, x: number) =>
      cdp.send('Input.dispatchTouchEvent', { type, touchPoints: type === 'touchEnd' ? [] : [{ x, y }] });
    await touch('touchStart', from);
    for (let step = 1; step <= 10; step += 1) {
      await touch('touchMove', from + ((to - from) * step) / 10);
    }
    await touch('touchEnd', to);
  } else {
    // A drag is a press, moves and a release at page positions: should the
    // page above shift in between (a line of words changing length), the
    // release misses the track. The user would drag again; so does the test.
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const box = (await slider.boundingBox())!;
      await slider.dragTo(slider, {
        sourcePosition: { x: box.width * 0.05, y: box.height / 2 },
        targetPosition: { x: box.width * 0.6, y: box.height / 2 },
      });
      if (/^Canary [56][0-9]/.test((await dashboard.page.getByTestId('scale-split').textContent()) ?? '')) break;
    }
  }
  // The split follows the drag as it moves; nothing is sent before the confirmation.
  const split = dashboard.page.getByTestId('scale-split');
  await expect(split).toHaveText(/^Canary [56][0-9](\.[0-9]+)? % · Production [34][0-9](\.[0-9]+)? %$/);
  await expect(dashboard.share('canary')).toHaveText('5 %');
  const target = (await split.textContent())!.match(/Canary ([0-9.]+) %/)![1];
  await dashboard.page.getByTestId('scale-review').click();
  await expect(dashboard.page.getByTestId('scale-question')).toHaveText(`Move canary from 5 % to ${target} %?`);
  await dashboard.screenshot(testInfo, 'slider-dragged');
  await dashboard.page.getByTestId('scale-confirm').click();
  await expect(dashboard.share('canary')).toHaveText(`${target} %`);
  const seen = await setup.server.sendTraffic(200);
  expect((seen['v2.7.0'] ?? 0) / 200).toBeGreaterThan(0.35);
});

test('every control works from the keyboard alone', async ({ dashboard }) => {
  const page = dashboard.page;
  await expect(dashboard.connection).toHaveText('Live');
  await dashboard.action('start').focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('start-tag').focus();
  await page.keyboard.type('v2.7.0');
  await page.getByTestId('confirm-yes').focus();
  await page.keyboard.press('Enter');
  await expect(dashboard.statusLine).toContainText('Canary at 5 %', { timeout: 20_000 });

  // The slider moves with the arrow keys; nothing is sent before the confirmation.
  await dashboard.action('scale').focus();
  await page.keyboard.press('Enter');
  await page.getByTestId('scale-range').focus();
  for (let press = 0; press < 10; press += 1) await page.keyboard.press('ArrowRight');
  await expect(page.getByTestId('scale-split')).not.toHaveText('Canary 5 % · Production 95 %');
  await page.getByTestId('scale-review').focus();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('scale-question')).toContainText('Move canary from 5 % to');
  await page.getByTestId('scale-confirm').focus();
  await page.keyboard.press('Enter');
  await expect(dashboard.share('canary')).not.toHaveText('5 %');

  // The auto-progression switch toggles with Space.
  const toggle = page.getByTestId('auto-progression-switch');
  await toggle.focus();
  await page.keyboard.press('Space');
  await expect(toggle).toHaveAttribute('aria-checked', 'false');

  // Emergency stop: Enter on the header button, type the reason, confirm with Enter.
  await page.getByTestId('header-stop').focus();
  await page.keyboard.press('Enter');
  await expect(page.getByTestId('stop-reason')).toBeFocused();
  await page.keyboard.type('keyboard drill');
  await page.getByTestId('confirm-yes').focus();
  await page.keyboard.press('Enter');
  await expect(dashboard.statusLine).toHaveText('Rolled back: keyboard drill', { timeout: 15_000 });
});
