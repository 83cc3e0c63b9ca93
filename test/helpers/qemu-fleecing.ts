// A QEMU without a guest OS, driven over QMP, exporting point-in-time (fleecing) views of its disk
// over NBD with the previous checkpoint's dirty bitmap, as a hypervisor does for a pull backup.
// Same sequence as qemu's own iotests (tests/image-fleecing, 223): backup sync=none into a qcow2
// scratch node backed by the live disk, one transaction per checkpoint.
import path from 'node:path';
import { QmpClient } from './qmp-client.js';
import { run, spawnChild, type Child } from './qemu-process.js';

export const DISK_NODE = 'fmt0';
const DEVICE_QOM = '/machine/peripheral/vd0/virtio-backend';

export interface FleeceExport {
  exportName: string;
  socketPath: string;
  uri: string;
  /** The qcow2 file that holds the copied-before-write old data (what --discard-after-read shrinks). */
  scratchPath: string;
  /** The bitmap exported as qemu:dirty-bitmap:NAME (writes since the previous checkpoint), if any. */
  bitmap?: string;
}

export class QemuFleecingVm {
  private fleeceCount = 0;
  private nbdStarted = false;
  private current: { exp: FleeceExport; node: string; job: string } | undefined;
  private access: { exp: FleeceExport; n: number } | undefined;

  private constructor(
    readonly dir: string,
    readonly diskPath: string,
    readonly qmp: QmpClient,
    readonly child: Child,
    readonly size: number,
  ) {}

  static async start(dir: string, sizeBytes: number): Promise<QemuFleecingVm> {
    const diskPath = path.join(dir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', diskPath, String(sizeBytes)]);
    const qmpPath = path.join(dir, 'qmp.sock');
    const child = spawnChild('qemu-system-x86_64', [
      '-nodefaults',
      '-display',
      'none',
      '-M',
      'q35',
      '-accel',
      'tcg',
      '-S',
      '-blockdev',
      `driver=file,filename=${diskPath},node-name=file0`,
      '-blockdev',
      `driver=qcow2,file=file0,node-name=${DISK_NODE}`,
      '-device',
      `virtio-blk-pci,drive=${DISK_NODE},id=vd0`,
      '-qmp',
      `unix:${qmpPath},server=on,wait=off`,
    ]);
    try {
      const qmp = await QmpClient.connect(qmpPath);
      return new QemuFleecingVm(dir, diskPath, qmp, child, sizeBytes);
    } catch (err) {
      await child.kill();
      throw new Error(`${(err as Error).message}; qemu said: ${child.stderr()}`);
    }
  }

  /** A guest write through the virtio device (so dirty bitmaps and copy-before-write see it). */
  async guestWrite(pattern: number, offset: number, length: number): Promise<void> {
    await this.qemuIo(`write -P 0x${pattern.toString(16)} ${offset} ${length}`);
  }

  async guestWriteZeroes(offset: number, length: number): Promise<void> {
    await this.qemuIo(`write -z ${offset} ${length}`);
  }

  private async qemuIo(cmd: string): Promise<void> {
    const out = await this.hmpQemuIo(`-d ${DEVICE_QOM}`, cmd, (text) => /^wrote \d+\/\d+ bytes/m.test(text));
    if (!/^wrote /m.test(out)) throw new Error(`qemu-io ${cmd}: ${out}`);
  }

  /**
   * HMP qemu-io prints to QEMU's stdout, not into the monitor reply: wait (with a deadline) until the
   * output shows the command finished, and return it.
   */
  private async hmpQemuIo(target: string, cmd: string, finished: (text: string) => boolean): Promise<string> {
    const mark = this.child.outputMark();
    const reply = await this.qmp.hmp(`qemu-io ${target} "${cmd}"`);
    const until = Date.now() + 10_000;
    for (;;) {
      const text = reply + this.child.outputSince(mark);
      if (finished(text) || /error|fail|invalid/i.test(text)) return text;
      if (Date.now() > until) throw new Error(`qemu-io ${cmd}: no result in time; output: ${text}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async addBitmap(name: string): Promise<void> {
    await this.qmp.execute('block-dirty-bitmap-add', { node: DISK_NODE, name });
  }

  /**
   * Freezes the disk now: one transaction disables `previousBitmap`, adds `nextBitmap` and starts the
   * fleecing job; then exports the frozen view (with `previousBitmap` as its dirty bitmap).
   */
  async startFleecing(opts: { previousBitmap?: string; nextBitmap: string; writable?: boolean }): Promise<FleeceExport> {
    if (this.current) throw new Error('a fleecing export is already running');
    const n = this.fleeceCount++;
    const node = `fleece${n}`;
    const job = `fleece-job${n}`;
    const scratch = path.join(this.dir, `scratch${n}.qcow2`);
    const info = JSON.parse(await run('qemu-img', ['info', '-U', '--output=json', this.diskPath])) as { 'virtual-size': number };
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', scratch, String(info['virtual-size'])]);
    await this.qmp.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': node,
      // Without discard=unmap the block layer ignores TRIM, and fleecing images never shrink.
      discard: 'unmap',
      file: { driver: 'file', filename: scratch, discard: 'unmap' },
      backing: DISK_NODE,
    });
    const actions: Array<{ type: string; data: Record<string, unknown> }> = [];
    if (opts.previousBitmap) {
      actions.push({ type: 'block-dirty-bitmap-disable', data: { node: DISK_NODE, name: opts.previousBitmap } });
    }
    actions.push({ type: 'block-dirty-bitmap-add', data: { node: DISK_NODE, name: opts.nextBitmap } });
    actions.push({ type: 'blockdev-backup', data: { 'job-id': job, device: DISK_NODE, target: node, sync: 'none' } });
    await this.qmp.execute('transaction', { actions });

    const socketPath = path.join(this.dir, 'nbd.sock');
    if (!this.nbdStarted) {
      await this.qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: socketPath } } });
      this.nbdStarted = true;
    }
    const exportName = `backup${n}`;
    await this.qmp.execute('block-export-add', {
      type: 'nbd',
      id: exportName,
      'node-name': node,
      name: exportName,
      writable: opts.writable ?? false,
      ...(opts.previousBitmap ? { bitmaps: [{ node: DISK_NODE, name: opts.previousBitmap }] } : {}),
    });
    const exp: FleeceExport = {
      exportName,
      socketPath,
      scratchPath: scratch,
      uri: `nbd+unix:///${exportName}?socket=${socketPath}`,
      ...(opts.previousBitmap ? { bitmap: opts.previousBitmap } : {}),
    };
    this.current = { exp, node, job };
    return exp;
  }

  /** Removes an NBD export and waits until QEMU says it is gone (clients may still be attached). */
  private async deleteExport(id: string): Promise<void> {
    await this.qmp.execute('block-export-del', { id, mode: 'hard' });
    await this.qmp.waitEvent('BLOCK_EXPORT_DELETED', (e) => e.data?.['id'] === id);
  }

  private async removeBitmap(name: string): Promise<void> {
    await this.qmp.execute('block-dirty-bitmap-remove', { node: DISK_NODE, name });
  }

  /** Tears the export and the fleecing job down; `dropBitmap` removes the exported (old) bitmap. */
  async stopFleecing(dropBitmap = true): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    await this.deleteExport(cur.exp.exportName);
    await this.qmp.execute('block-job-cancel', { device: cur.job, force: true });
    await this.qmp.waitEvent('BLOCK_JOB_CANCELLED', (e) => e.data?.['device'] === cur.job);
    await this.qmp.execute('blockdev-del', { 'node-name': cur.node });
    if (dropBitmap && cur.exp.bitmap) await this.removeBitmap(cur.exp.bitmap);
  }

  /**
   * Bytes the running fleecing node holds itself (copied-before-write old data), asked of QEMU
   * (qemu-io map on the node): the file on disk lags behind QEMU's metadata cache.
   */
  async scratchAllocatedBytes(): Promise<number> {
    if (!this.current) throw new Error('no fleecing export is running');
    const size = this.size;
    const sum = (text: string, re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
    const all = /\((0x[0-9a-f]+)\) bytes\s+(?:not )?allocated at offset/g;
    const out = await this.hmpQemuIo(this.current.node, 'map', (text) => sum(text, all) >= size);
    return sum(out, /\((0x[0-9a-f]+)\) bytes\s+allocated at offset/g);
  }

  /**
   * The Proxmox-style graph (QEMU 7.1+, as PVE's backup-access-setup builds it): a copy-before-write
   * filter in front of the device and a snapshot-access node exported writable. With
   * `previousBitmap`, the filter and the export are limited to that bitmap: reads and allocation
   * queries outside its dirty areas FAIL, as they do for a Proxmox backup provider.
   */
  async startSnapshotAccess(opts: { previousBitmap?: string; nextBitmap: string }): Promise<FleeceExport> {
    if (this.current || this.access) throw new Error('a fleecing export is already running');
    const n = this.fleeceCount++;
    const scratch = path.join(this.dir, `access${n}.raw`);
    await run('qemu-img', ['create', '-q', '-f', 'raw', scratch, String(this.size)]);
    await this.qmp.execute('blockdev-add', { 'node-name': `fl${n}`, driver: 'file', filename: scratch, discard: 'unmap' });
    const actions: Array<{ type: string; data: Record<string, unknown> }> = [];
    if (opts.previousBitmap) actions.push({ type: 'block-dirty-bitmap-disable', data: { node: DISK_NODE, name: opts.previousBitmap } });
    actions.push({ type: 'block-dirty-bitmap-add', data: { node: DISK_NODE, name: opts.nextBitmap } });
    await this.qmp.execute('transaction', { actions });
    await this.qmp.execute('blockdev-add', {
      driver: 'copy-before-write',
      'node-name': `cbw${n}`,
      discard: 'unmap',
      file: DISK_NODE,
      target: `fl${n}`,
      ...(opts.previousBitmap ? { bitmap: { node: DISK_NODE, name: opts.previousBitmap } } : {}),
    });
    // The freeze: from here on guest writes copy the old data into the fleecing file first.
    await this.qmp.execute('qom-set', { path: DEVICE_QOM, property: 'drive', value: `cbw${n}` });
    // discard=unmap, or QEMU silently ignores the TRIMs of --discard-after-read.
    await this.qmp.execute('blockdev-add', { driver: 'snapshot-access', 'node-name': `acc${n}`, file: `cbw${n}`, discard: 'unmap' });
    const socketPath = path.join(this.dir, 'nbd.sock');
    if (!this.nbdStarted) {
      await this.qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: socketPath } } });
      this.nbdStarted = true;
    }
    const exportName = `access${n}`;
    await this.qmp.execute('block-export-add', {
      type: 'nbd',
      id: exportName,
      'node-name': `acc${n}`,
      name: exportName,
      writable: true,
      ...(opts.previousBitmap ? { bitmaps: [{ node: DISK_NODE, name: opts.previousBitmap }] } : {}),
    });
    const exp: FleeceExport = {
      exportName,
      socketPath,
      scratchPath: scratch,
      uri: `nbd+unix:///${exportName}?socket=${socketPath}`,
      ...(opts.previousBitmap ? { bitmap: opts.previousBitmap } : {}),
    };
    this.access = { exp, n };
    return exp;
  }

  async stopSnapshotAccess(dropBitmap = true): Promise<void> {
    const cur = this.access;
    if (!cur) return;
    this.access = undefined;
    await this.deleteExport(cur.exp.exportName);
    await this.qmp.execute('blockdev-del', { 'node-name': `acc${cur.n}` });
    await this.qmp.execute('qom-set', { path: DEVICE_QOM, property: 'drive', value: DISK_NODE });
    await this.qmp.execute('blockdev-del', { 'node-name': `cbw${cur.n}` });
    await this.qmp.execute('blockdev-del', { 'node-name': `fl${cur.n}` });
    if (dropBitmap && cur.exp.bitmap) await this.removeBitmap(cur.exp.bitmap);
  }

  async stop(): Promise<void> {
    this.qmp.close();
    await this.child.kill();
  }
}

/** The frozen view an export shows, copied to a raw file by qemu-img (the reference for comparisons). */
export async function snapshotExportToFile(exp: { uri: string }, file: string): Promise<void> {
  await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', exp.uri, file]);
}
