// Starts the real server binary (and, for some tests, a scripted
// OpenAI-compatible upstream) on free ports with a fresh data dir.
const { spawn } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForHttp(url, child, logs, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${logs.join('')}`);
    const ok = await new Promise((resolve) => {
      http.get(url, (res) => { res.resume(); resolve(res.statusCode === 200); }).on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not start:\n${logs.join('')}`);
}

async function startApp(env = {}) {
  const bin = process.env.RAGCHAT_BIN;
  if (!bin) throw new Error('RAGCHAT_BIN must name the server binary (scripts/test.sh sets it)');
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ragchat-e2e-'));
  const logs = [];
  const child = spawn(bin, [], {
    cwd: ROOT,
    env: {
      ...process.env,
      APP__SERVER__BIND: `127.0.0.1:${port}`,
      APP__DATA_DIR: dataDir,
      // Tests chat quickly; the rate-limit test sets its own limits.
      APP__LIMITS__GUEST__REQUESTS_PER_MINUTE: '0',
      APP__LIMITS__USER__REQUESTS_PER_MINUTE: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => logs.push(d.toString()));
  child.stderr.on('data', (d) => logs.push(d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/`, child, logs);
  return {
    url,
    logs,
    stop: () => {
      child.kill('SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// An OpenAI-compatible upstream that streams `pieces` as the answer, one
// piece every `delayMs`. Given a list of lists, the n-th request gets the
// n-th list (the last one repeats).
async function startScriptedUpstream(pieces, { delayMs = 30 } = {}) {
  const answers = Array.isArray(pieces[0]) ? pieces : [pieces];
  let served = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    const answer = answers[Math.min(served, answers.length - 1)];
    served += 1;
    req.on('end', async () => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      for (const piece of answer) {
        res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: piece } }] })}\n\n`);
        await new Promise((r) => setTimeout(r, delayMs));
      }
      res.write('data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5}}\n\n');
      res.end('data: [DONE]\n\n');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { baseUrl: `http://127.0.0.1:${server.address().port}/v1`, stop: () => server.close() };
}

module.exports = { startApp, startScriptedUpstream };
