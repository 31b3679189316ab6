// The console at every size the design names: phone, tablet portrait and
// landscape, desktop and a wide desktop. Nothing scrolls sideways, every
// control is a 44 px touch target (24 px with a mouse), and Emergency Stop
// stays on screen.
import { expect, test } from '../fixtures/canary';

test('a running canary fits the screen, with touch-sized controls and Emergency Stop in reach', async ({ dashboard, setup }, testInfo) => {
  await expect(dashboard.connection).toHaveText('Live');
  await dashboard.startCanary('v2.7.0', '25');
  await expect(dashboard.statusLine).toContainText('Canary at 25 %', { timeout: 20_000 });
  await setup.server.sendTraffic(200);
  await expect(dashboard.page.getByTestId('canary-requests')).not.toHaveText('0', { timeout: 15_000 });
  await expect
    .poll(async () => (await dashboard.chartInk('requests')).canary > 0, { message: 'the request chart draws the canary' })
    .toBe(true);

  const page = dashboard.page;
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow, 'nothing scrolls sideways').toBeLessThanOrEqual(0);

  // On a touch screen every visible control is at least 44 × 44 CSS pixels;
  // with a mouse, at least WCAG's 24 × 24.
  const least = testInfo.project.use.hasTouch ? 44 : 24;
  const small = await page.evaluate((least) =>
    Array.from(document.querySelectorAll<HTMLElement>('button, summary, select, input, a[href]'))
      .filter((element) => element.offsetParent !== null)
      .map((element) => {
        const box = element.getBoundingClientRect();
        const name = element.dataset.testid ?? element.textContent?.trim().slice(0, 30) ?? element.tagName;
        return { name, width: Math.round(box.width), height: Math.round(box.height) };
      })
      .filter((control) => control.width < least || control.height < least),
  least);
  expect(small, 'controls smaller than a fingertip').toEqual([]);
  await dashboard.screenshot(testInfo, 'layout-top');

  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight / 2));
  await expect(page.getByTestId('header-stop')).toBeInViewport();
  await dashboard.screenshot(testInfo, 'layout-middle');
});
