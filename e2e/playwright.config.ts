// Browser tests of the canary console, in Debian's Chromium (never a downloaded browser).
// Run through `cargo xtask e2e` (or `cargo xtask ci`), which builds the console and the
// server and passes their paths in CANARY_ASSETS and CANARY_BIN.
import { defineConfig } from '@playwright/test';

const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export default defineConfig({
  testDir: './tests',
  // Two cores: one browser at a time keeps timings sane.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 60_000,
  // The whole run takes 3–4 minutes: a stuck run fails in time to read why
  // instead of using up CI's 90 minutes.
  globalTimeout: 20 * 60_000,
  expect: { timeout: 15_000 },
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    launchOptions: { executablePath: '/usr/bin/chromium', args: chromiumArgs },
    trace: 'retain-on-failure',
  },
  // Every journey runs at desktop and tablet size; the layout check runs at
  // every size the design names (phone, tablet landscape, wide desktop too).
  projects: [
    { name: 'desktop', use: { viewport: { width: 1280, height: 800 } } },
    {
      name: 'tablet',
      use: { viewport: { width: 820, height: 1180 }, hasTouch: true, isMobile: true, deviceScaleFactor: 1 },
    },
    {
      name: 'phone',
      testMatch: /layout\.spec\.ts/,
      use: { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 1 },
    },
    {
      name: 'landscape',
      testMatch: /layout\.spec\.ts/,
      use: { viewport: { width: 1180, height: 820 }, hasTouch: true, isMobile: true, deviceScaleFactor: 1 },
    },
    { name: 'wide', testMatch: /layout\.spec\.ts/, use: { viewport: { width: 1440, height: 900 } } },
  ],
});
