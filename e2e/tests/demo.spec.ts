// `canary demo` as a newcomer meets it: traffic already flowing, a canary
// started from the console, broken from the demo panel, and rolled back on screen.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test as base, expect } from '@playwright/test';
import { Dashboard } from '../fixtures/canary';

const test = base.extend<{ demoUrl: string }>({
  demoUrl: async ({}, use) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'canary-demo-e2e-'));
    const child: ChildProcess = spawn(
      process.env.CANARY_BIN!,
      ['demo', '--admin-listen', '127.0.0.1:0', '--proxy-listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'),
        '--assets-dir', process.env.CANARY_ASSETS!],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CANARY_LOG: 'warn' } },
    );
    const url = await new Promise<string>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error('canary demo did not start')), 30_000);
      child.stdout!.on('data', (chunk) => {
        buffered += chunk.toString();
        const found = buffered.match(/console at (http:\/\/\S+)/);
        if (found) {
          clearTimeout(timer);
          resolve(found[1]);
        }
      });
      child.on('exit', (code) => reject(new Error(`canary demo exited with ${code}`)));
    });
    try {
      await use(url);
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
});

test('the demo shows live traffic, and a canary broken from the demo panel is rolled back on screen', async ({ page, demoUrl }, testInfo) => {
  // Two rollouts, each with its 15 s shadow step.
  test.setTimeout(180_000);
  await page.goto(demoUrl);
  const dashboard = new Dashboard(page);
  await expect(dashboard.connection).toHaveText('Live');
  // Traffic flows through the proxy from the first seconds.
  await expect(page.getByTestId('production-requests')).not.toHaveText('0', { timeout: 15_000 });
  await expect(page.getByTestId('demo-words')).toHaveText('Canary service: healthy · 40 requests/s of load');

  await dashboard.startCanary('v2.7.0', '50');
  // The demo's deploy script runs as the deploy hook; its output is in the
  // trail. Then, for 15 s, the canary gets copies of half the requests and
  // its answers are compared with production's, before anyone is served by it.
  await expect(dashboard.statusLine).toContainText("Shadow traffic: v2.7.0 gets copies of 50 % of production's requests", { timeout: 20_000 });
  await expect(page.getByTestId('validation')).toContainText('Copying');
  await expect(page.getByTestId('validation')).toContainText(/Compared\s*[1-9]/, { timeout: 10_000 });
  await expect(dashboard.statusLine).toContainText('Canary at 50 %', { timeout: 30_000 });
  await expect(dashboard.auditEntries.filter({ hasText: 'Deployed' })).toContainText('exit 0');
  await expect(page.getByTestId('canary-requests')).not.toHaveText('0', { timeout: 15_000 });
  // The services' own memory-query latency, scraped from their /metrics, is charted for both sides.
  await expect(page.getByTestId('chart-custom-0')).toContainText('memory_query_latency_ms');
  await expect
    .poll(async () => {
      const ink = await dashboard.chartInk('custom-0');
      return ink.production > 0 && ink.canary > 0;
    }, { message: 'the custom metric chart draws both sides', timeout: 20_000 })
    .toBe(true);
  await expect(page.getByTestId('chart-custom-0-canary')).toHaveText(/^\d+(\.\d+)?$/);
  // Each service card lists the side's custom metric too.
  await expect(page.getByTestId('canary-custom')).toContainText(/memory_query_latency_ms\s*\d+(\.\d+)?/);
  await expect(page.getByTestId('production-custom')).toContainText(/memory_query_latency_ms\s*\d+(\.\d+)?/);
  // The statistical judge (advisory in the demo) shows both judged metrics in words.
  await expect(page.getByTestId('judged-metric')).toHaveCount(2);
  await expect(page.getByTestId('judge')).toContainText('failure rate:');
  await expect(page.getByTestId('judge')).toContainText('latency:');
  await page.getByTestId('demo').scrollIntoViewIfNeeded();
  await dashboard.screenshot(testInfo, 'demo-healthy');

  await page.getByTestId('demo-errors-50').click();
  await expect(page.getByTestId('demo-words')).toHaveText('Canary service: 50 % errors · 40 requests/s of load');
  await expect(dashboard.statusLine).toContainText(/Rolled back: .*(error|success) rate/i, { timeout: 30_000 });
  await expect(dashboard.share('canary')).toHaveText('0 %');
  await expect(page.getByTestId('decision').first()).toContainText('Auto rollback');
  await dashboard.screenshot(testInfo, 'demo-rolled-back');

  // A subtler regression: 100 ms slower is within the p95 limit, but the
  // statistical judge (advisory in the demo) finds it and pauses the rollout.
  await page.getByTestId('demo-heal').click();
  await expect(page.getByTestId('demo-words')).toHaveText('Canary service: healthy · 40 requests/s of load');
  await dashboard.startCanary('v2.7.1', '50');
  await expect(dashboard.statusLine).toContainText('Canary at 50 %', { timeout: 40_000 });
  await page.getByTestId('demo-latency-100ms').click();
  await expect(dashboard.statusLine).toContainText(
    'Paused with the canary at 50 %: statistical judge (advisory): latency: the canary is slower than production',
    { timeout: 30_000 },
  );
  await expect(page.getByTestId('decision').first()).toContainText('Auto pause');
  const latency = page.getByTestId('judged-metric').filter({ hasText: 'latency:' });
  await expect(latency).toContainText('Fail');
  await expect(latency.getByTestId('evidence-chart')).toBeVisible();
  await latency.scrollIntoViewIfNeeded();
  await dashboard.screenshot(testInfo, 'demo-judge-paused');
});
