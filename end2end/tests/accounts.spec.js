// Accounts and limits in the browser: the first account is admin and sees the
// user list; API keys are made and revoked in the browser and used from a
// script; a rate-limited message shows a countdown and the composer comes
// back when it ends; a spent budget moves to the smaller model and says so.
const { test, expect } = require('@playwright/test');
const { startApp, startScriptedUpstream } = require('./helpers');

const composer = (page) => page.getByRole('textbox', { name: 'Message' });

async function send(page, text) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
}

test.describe('accounts', () => {
  let upstream;
  let app;
  test.beforeAll(async () => {
    upstream = await startScriptedUpstream(['Sure', ', here', ' it is.']);
    app = await startApp({
      APP__LLM__BASE_URL: upstream.baseUrl,
      APP__LLM__MODEL: 'scripted',
    });
  });
  test.afterAll(() => { app && app.stop(); upstream && upstream.stop(); });

  test('a guest signs up, keeps the chat, and as the first account administers users', async ({ page }) => {
    await page.goto(app.url);
    await expect(page.locator('.account')).toContainText('Guest');
    await send(page, 'Remember this question');
    await expect(page.locator('article.message.assistant').last()).toContainText('here it is');

    await page.locator('.account').getByRole('link', { name: 'Sign up' }).click();
    await expect(page.getByRole('heading', { name: 'Create an account' })).toBeVisible();
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill('short');
    await page.getByRole('button', { name: 'Create account' }).click();
    // The browser's own check stops a short password before it is sent.
    await expect(page).toHaveURL(/\/signup$/);
    await page.getByLabel('Password').fill('correct horse');
    await page.getByRole('button', { name: 'Create account' }).click();

    await expect(page.locator('.account')).toContainText('ada');
    await expect(page.locator('.account .badge')).toHaveText('admin');
    await expect(page.locator('.conversation-list')).toContainText('Remember this question');

    await page.locator('.account').getByRole('link', { name: 'Users' }).click();
    await expect(page.getByRole('heading', { name: 'Users' })).toBeVisible();
    await expect(page.locator('tr.user')).toHaveCount(1);
    await expect(page.locator('tr.user').first()).toContainText('ada');
    await page.screenshot({ path: 'test-results/users.png' });

    await page.locator('.account').getByRole('button', { name: 'Sign out' }).click();
    await expect(page.locator('.account')).toContainText('Sign in');
    await page.goto(`${app.url}/login`);
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill('wrong horse');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.locator('.form-error')).toHaveText('Wrong username or password.');
    await page.getByLabel('Password').fill('correct horse');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.locator('.account')).toContainText('ada');
  });


  test('a vote on an answer shows up on the dashboard, with its comment and sources', async ({ page }) => {
    await page.goto(`${app.url}/login`);
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill('correct horse');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.locator('.account')).toContainText('ada');

    await send(page, 'Rate this answer');
    const answer = page.locator('article.message.assistant').last();
    await expect(answer.locator('.meta')).toContainText('tokens');
    await answer.hover();
    await answer.getByRole('button', { name: 'Bad answer' }).click();
    await expect(answer.getByRole('button', { name: 'Bad answer' })).toHaveAttribute('aria-pressed', 'true');
    await answer.getByRole('textbox', { name: 'Comment on this answer' }).fill('Too vague.');
    await answer.getByRole('button', { name: 'Send' }).click();
    // The vote survives a reload.
    await page.reload();
    await expect(page.locator('article.message.assistant').last().getByRole('button', { name: 'Bad answer' }))
      .toHaveAttribute('aria-pressed', 'true');

    await page.locator('.account').getByRole('link', { name: 'Dashboard' }).click();
    await expect(page.getByRole('heading', { name: 'Dashboard' })).toBeVisible();
    const row = page.locator('tr.group[data-name="scripted"]');
    await expect(row).toBeVisible();
    await expect(row.locator('.up-rate')).toContainText('0%');
    await expect(row.locator('.up-rate')).toContainText('n=1');
    await expect(page.locator('.chart svg polyline.p50')).toHaveCount(1);
    const worst = page.locator('.downvoted li').first();
    await expect(worst).toContainText('Rate this answer');
    await worst.locator('summary').click();
    await expect(worst.locator('.comments')).toContainText('Too vague.');
    await page.locator('.range-picker').getByRole('link', { name: '7 days' }).click();
    await expect(page).toHaveURL(/hours=168/);
    await expect(row).toBeVisible();
    await page.screenshot({ path: 'test-results/dashboard.png', fullPage: true });
  });

  test('an API key made in the browser works from a script until it is revoked', async ({ page, playwright }) => {
    await page.goto(`${app.url}/login`);
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill('correct horse');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.account').getByRole('link', { name: 'API keys' }).click();
    await expect(page.getByRole('heading', { name: 'API keys' })).toBeVisible();
    await expect(page.getByText('No keys yet.')).toBeVisible();
    await page.getByLabel('Name').fill('report script');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = (await page.locator('.new-key .secret').innerText()).trim();
    expect(secret).toMatch(/^rck_[0-9a-f]{64}$/);
    await expect(page.locator('.new-key .example')).toContainText(`Bearer ${secret}`);
    const row = page.locator('tr.api-key[data-name="report script"]');
    await expect(row).toContainText(secret.slice(0, 12));
    await expect(row).not.toContainText(secret.slice(12));
    await page.screenshot({ path: 'test-results/api-keys.png' });

    // A script (no cookies) chats as ada with the key.
    const script = await playwright.request.newContext({
      extraHTTPHeaders: { Authorization: `Bearer ${secret}` },
    });
    const chat = await script.post(`${app.url}/api/chat`, { data: { text: 'Asked by a script' } });
    expect(chat.status()).toBe(200);
    expect(await chat.text()).toContain('here');
    await page.goto(app.url);
    await expect(page.locator('.conversation-list')).toContainText('Asked by a script');

    // The same key as an OpenAI client: its answer stays out of the
    // conversation list, and the dashboard counts it, and its vote, under
    // the key's name.
    const completion = await script.post(`${app.url}/v1/chat/completions`, {
      data: { model: 'rag', messages: [{ role: 'user', content: 'Asked through the OpenAI API' }] },
    });
    expect(completion.status()).toBe(200);
    const answer = await completion.json();
    expect(answer.object).toBe('chat.completion');
    expect(answer.choices[0].message.content).toContain('here');
    const vote = await script.post(`${app.url}/v1/chat/completions/${answer.id}/feedback`, {
      data: { rating: 'up' },
    });
    expect(vote.status()).toBe(200);
    await page.reload();
    await expect(page.locator('.conversation-list')).toContainText('Asked by a script');
    await expect(page.locator('.conversation-list')).not.toContainText('Asked through the OpenAI API');
    await page.locator('.account').getByRole('link', { name: 'Dashboard' }).click();
    const traffic = page.locator('tr.source[data-source="api"]', { hasText: 'report script' });
    await expect(traffic).toBeVisible();
    await expect(traffic.locator('td').nth(1)).toHaveText('ada');
    await expect(traffic.locator('td').nth(2)).toHaveText('1');
    await expect(traffic.locator('td').nth(9)).toHaveText('1');
    await expect(page.locator('tr.source[data-source="browser"]')).toBeVisible();
    await page.locator('table.by-source').screenshot({ path: 'test-results/traffic-by-source.png' });

    await page.locator('.account').getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('button', { name: 'Revoke report script' }).click();
    await expect(page.getByText('No keys yet.')).toBeVisible();
    const refused = await script.post(`${app.url}/api/conversations`);
    expect(refused.status()).toBe(401);
    await script.dispose();
  });
});

test.describe('budgets', () => {
  let main;
  let small;
  let app;
  test.beforeAll(async () => {
    main = await startScriptedUpstream(['From the', ' main model.']);
    small = await startScriptedUpstream(['From the', ' small model.']);
    app = await startApp({
      APP__LLM__BASE_URL: main.baseUrl,
      APP__LLM__MODEL: 'main-model',
      APP__LLM__MODELS__SMALL__BASE_URL: small.baseUrl,
      APP__LLM__MODELS__SMALL__MODEL: 'small-model',
      APP__LIMITS__OVER_BUDGET_MODEL: 'small',
      // The scripted upstream reports 15 tokens an answer.
      APP__LIMITS__GUEST__TOKENS_PER_DAY: '15',
    });
  });
  test.afterAll(() => { app && app.stop(); main && main.stop(); small && small.stop(); });

  test('a spent budget moves to the smaller model and the answer says so', async ({ page }) => {
    await page.goto(app.url);
    await send(page, 'first question');
    const first = page.locator('article.message.assistant').last();
    await expect(first.locator('.meta')).toContainText('tokens');
    await expect(first).toContainText('From the main model.');
    await expect(first.locator('.answer-note')).toHaveCount(0);
    await send(page, 'second question');
    const second = page.locator('article.message.assistant').nth(1);
    await expect(second.locator('.meta')).toContainText('tokens');
    await expect(second).toContainText('From the small model.');
    await expect(second.locator('.answer-note')).toContainText("today's token budget");
    await expect(second.locator('.meta')).toContainText('small-model');
    await page.screenshot({ path: 'test-results/over-budget.png' });
    // The note stays with the answer.
    await page.reload();
    await expect(page.locator('article.message.assistant').nth(1).locator('.answer-note'))
      .toContainText("today's token budget");
    await expect(page.locator('article.message.assistant').first().locator('.answer-note')).toHaveCount(0);
  });
});

test.describe('rate limits', () => {
  let upstream;
  let app;
  test.beforeAll(async () => {
    upstream = await startScriptedUpstream(['Sure', ', here', ' it is.']);
    app = await startApp({
      APP__LLM__BASE_URL: upstream.baseUrl,
      APP__LLM__MODEL: 'scripted',
      // One message, then one every 5 s.
      APP__LIMITS__GUEST__REQUESTS_PER_MINUTE: '12',
      APP__LIMITS__GUEST__BURST: '1',
    });
  });
  test.afterAll(() => { app && app.stop(); upstream && upstream.stop(); });

  test('over the rate limit: a countdown, then the composer works again', async ({ page }) => {
    await page.goto(app.url);
    await send(page, 'first');
    // Wait for the whole answer (its footer counts the tokens): while it
    // streams, the composer doesn't send.
    await expect(page.locator('article.message.assistant').last().locator('.meta')).toContainText('tokens');
    await send(page, 'second, too soon');
    const hint = page.locator('.composer-hint');
    await expect(hint).toContainText(/you can send again in \d+ s/);
    await expect(page.locator('article.message.assistant').last()).toContainText('too quickly');
    await composer(page).fill('third');
    await expect(page.getByRole('button', { name: 'Send message' })).toBeDisabled();
    const first = Number((await hint.innerText()).match(/in (\d+) s/)[1]);
    await page.waitForTimeout(1_500);
    const later = Number((await hint.innerText()).match(/in (\d+) s/)[1]);
    expect(later).toBeLessThan(first);
    await page.screenshot({ path: 'test-results/rate-limited.png' });
    await expect(hint).toHaveText('', { timeout: 10_000 });
    await expect(page.getByRole('button', { name: 'Send message' })).toBeEnabled();
    await composer(page).press('Enter');
    await expect(page.locator('article.message.assistant').last()).toContainText('here it is');
  });
});
