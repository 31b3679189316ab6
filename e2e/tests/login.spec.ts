// With logins on: the console asks for a sign-in, refuses a wrong password
// with one generic message, shows who is signed in, and signs out.
import { execFileSync } from 'node:child_process';
import { test, expect, Dashboard } from '../fixtures/canary';

const password = 'e2e operator password';

function authConfig(): string {
  const entry = execFileSync(process.env.CANARY_BIN!, ['hash-password', '--user', 'oscar', '--role', 'operator'], {
    input: `${password}\n`,
  }).toString();
  const users = entry
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => `    ${line}`)
    .join('\n');
  return `auth:\n  users:\n${users}\n`;
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
