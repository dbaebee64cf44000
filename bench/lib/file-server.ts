/**
 * Reference server for the cache-hit throughput test: plain node:http streaming one file with fs.createReadStream
 * (1 MiB chunks, the same as the agent's store), no framework, no checks. It shows what Node itself reaches on this
 * machine, separating "Node streaming is slow here" from "the agent adds overhead".
 *
 * Run as a module: `node bench/lib/file-server.ts FILE PORT` answers every GET with FILE; startFileServer() does
 * that as a subprocess.
 */
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/fixtures/ports.ts';
import { startProcess } from '../../test/fixtures/process.ts';

const SELF = fileURLToPath(import.meta.url);

export interface FileServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startFileServer(file: string): Promise<FileServer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = await startProcess(process.execPath, [SELF, file, String(port)], {
    name: 'reference file server',
    ready: async (signal) => {
      const res = await fetch(`${url}/ready`, { method: 'HEAD', signal });
      return res.ok;
    },
  });
  return { url, pid: proc.pid, stop: proc.stop };
}

function serve(file: string, port: number): void {
  const size = statSync(file).size;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': size });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
    stream.pipe(res);
    res.once('close', () => stream.destroy());
  });
  server.listen(port, '127.0.0.1');
  process.once('SIGTERM', () => process.exit(0));
}

if (process.argv[1] === SELF) {
  const [file, port] = process.argv.slice(2);
  if (file === undefined || port === undefined) {
    console.error('usage: node bench/lib/file-server.ts FILE PORT');
    process.exit(2);
  }
  serve(file, Number(port));
}
