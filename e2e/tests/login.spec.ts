// With logins on: the console asks for a sign-in, refuses a wrong password
// with one generic message, shows who is signed in, and signs out.
import { execFileSync } from 'node:child_process';
import { test, expect, Dashboard } from '../fixtures/canary';

const password = 'e2e operator password';
const viewerPassword = 'e2e viewer password';

/** The config entry `canary hash-password` prints for a user. */
function userEntry(name: string, role: string, secret: string): string {
  const entry = execFileSync(process.env.CANARY_BIN!, ['hash-password', '--user', name, '--role', role], {
    input: `${secret}\n`,
  }).toString();
  return entry
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => `    ${line}`)
    .join('\n');
}

function authConfig(): string {
  const users = [userEntry('oscar', 'operator', password), userEntry('vera', 'viewer', viewerPassword)];
  return `auth:\n  users:\n${users.join('\n')}\n`;
}

test.use({ extraConfig: authConfig() });

test('an operator signs in, sees who they are, and signs out', async ({ page, setup }, testInfo) => {
  await page.goto(setup.server.consoleUrl);
  const form = page.getByTestId('login-form');
  await expect(form).toBeVisible();
  await page.getByTestId('login-user').fill('oscar');
  await page.getByTestId('login-password').fill('not the password');
  await page.getByTestId('login-submit').click();
  await expect(page.getByTestId('login-error')).toHaveText('wrong user name or password');
  await new Dashboard(page).screenshot(testInfo, 'login-refused');

  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await expect(page.getByTestId('identity')).toContainText('oscar');
  await expect(page.getByTestId('identity')).toContainText('operator');
  await expect(page.getByTestId('connection-status')).toContainText(/live/i);
  await new Dashboard(page).screenshot(testInfo, 'signed-in');

  await page.getByTestId('sign-out').click();
  await expect(form).toBeVisible();
  // The old session is gone: reloading asks for a sign-in again.
  await page.reload();
  await expect(page.getByTestId('login-form')).toBeVisible();
});

test('a viewer watches the rollout but every action says why it is not theirs', async ({ page, setup }, testInfo) => {
  await page.goto(setup.server.consoleUrl);
  await page.getByTestId('login-user').fill('vera');
  await page.getByTestId('login-password').fill(viewerPassword);
  await page.getByTestId('login-submit').click();
  await expect(page.getByTestId('identity')).toContainText('viewer');
  const dashboard = new Dashboard(page);
  await expect(dashboard.connection).toHaveText('Live');
  await expect(dashboard.statusLine).toHaveText('Production only (100 %)');
  await expect(dashboard.action('start')).toBeDisabled();
  await expect(dashboard.action('stop')).toBeDisabled();
  await expect(dashboard.actionsReason).toHaveText('signed in as a viewer: you can watch; operators and admins act');
  await dashboard.screenshot(testInfo, 'viewer');
});
