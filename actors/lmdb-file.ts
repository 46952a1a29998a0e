/**
 * Checks a replica's LMDB data file (`data.mdb`) with plain reads before lmdb-js maps it
 * (replica-store.ts). LMDB keeps no checksums and trusts its file: a page past the end of a
 * truncated file faults the whole process with SIGBUS when it is read through the map, a page
 * header or node that points elsewhere makes LMDB read wild memory (SIGSEGV), and lmdb-js 3.5.6
 * crashes the process on any environment open that fails (measured here: a meta page with a wrong
 * magic or version, or zeroed, segfaults it). What can be found before mapping is found here:
 *
 * - Both meta pages must be valid: their page header, magic, data version, page size, last page
 *   and roots. LMDB rewrites a meta page only from its `mm_mapsize` field on, so a meta page
 *   whose header, magic or version is wrong was damaged, not torn by a crash (upstream LMDB
 *   refuses such a file too; the copy lmdb-js vendors checks meta page 0 only, and would use a
 *   damaged page 1 with a larger txnid).
 * - The B-trees of the meta in force (the larger txnid, as LMDB picks it), the free-page tree and
 *   the main tree: every branch, leaf and overflow page they reach must lie in the file, bear its
 *   own page number and the type its parent expects, and every node must lie inside its page.
 *   The file's length alone proves nothing: LMDB does not write a page allocated and freed in the
 *   same transaction, so a healthy file often ends before the meta's last page (a store's step
 *   frees its redo record's pages so: 4 of 40 closes of a store under steps of growing records
 *   left it short, measured).
 *
 * Not checked: the bytes of keys and values (the store checksums its values), and the free-page
 * lists inside the free tree's values. Damage there, or damage done while the file is mapped,
 * can still crash the process (see the README's "Replica" entry).
 *
 * The layout is lmdb-js 3.5.6's vendored LMDB (`dependencies/lmdb/libraries/liblmdb/mdb.c`, data
 * version 2) on a little-endian 64-bit machine, checked against files it wrote: its page header
 * is 24 bytes (page number, txnid, pad, flags, lower/upper bounds or overflow page count), where
 * upstream LMDB 0.9 (data version 1) has 16, and its meta ends with a boot id.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const PAGE_HEADER = 24;
/** Where a page header keeps its flags, and its free space's bounds or (an overflow page) its page count. */
const FLAGS = 18;
const LOWER = 20;
const UPPER = 22;
const P_BRANCH = 0x01;
const P_LEAF = 0x02;
const P_OVERFLOW = 0x04;
const P_META = 0x08;
/** The bits of a page's flags that say what kind of page it is (the rest are LMDB's bookkeeping). */
const PAGE_KIND = 0x6f;
const F_BIGDATA = 0x01;
const F_SUBDATA = 0x02;
const MDB_MAGIC = 0xbeefc0de;
const MDB_DATA_VERSION = 2;
const META_PAGES = 2;
const MIN_PAGE_SIZE = 256;
const MAX_PAGE_SIZE = 0x10000;
/** `P_INVALID`: the root of an empty tree. */
const NO_PAGE = 0xffff_ffff_ffff_ffffn;
const NODE_HEADER = 8;
/** An `MDB_db` record: a tree's page size (in the free tree's), flags, depth, page counts, entries and root. */
const DB_RECORD = 48;
/** Where the meta struct's fields are, from the start of its page. */
const META = { magic: 24, version: 28, freeTree: 48, mainTree: 96, lastPage: 144, txnid: 152, end: 160 } as const;
/** Where an `MDB_db` record keeps its root page. */
const DB_ROOT = 40;
/** How many times a check that found damage is repeated when the file's meta in force moved meanwhile. */
const ATTEMPTS = 10;

/** What a meta page says, once found valid. */
interface Meta {
  readonly pageSize: number;
  readonly lastPage: number;
  readonly txnid: bigint;
  readonly roots: readonly [free: number | undefined, main: number | undefined];
}

/**
 * What is wrong with the LMDB data file `file`, or undefined when lmdb-js can map it; a file that
 * does not exist or is empty is one LMDB has not written yet, and maps as a new environment.
 * A check that finds damage is repeated when a commit of the same process (a killed thread's
 * writes, which lmdb-js's shared writer still carries out) moved the meta in force meanwhile.
 */
export function lmdbFileDamage(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    let damage: string | undefined;
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const before = inForce(fd);
      damage = check(fd);
      if (damage === undefined || inForce(fd) === before) return damage;
    }
    return damage;
  } finally {
    closeSync(fd);
  }
}

/** The two meta pages' txnids as they are now, to tell whether a commit came in between. */
function inForce(fd: number): string {
  const meta = Buffer.alloc(META.end);
  readSync(fd, meta, 0, META.end, 0);
  const zero = meta.readBigUInt64LE(META.txnid);
  readSync(fd, meta, 0, META.end, meta.readUInt32LE(META.freeTree));
  return `${zero},${meta.readBigUInt64LE(META.txnid)}`;
}

function check(fd: number): string | undefined {
  const size = fstatSync(fd).size;
  if (size === 0) return undefined;
  const zero = readMeta(fd, 0, 0, size);
  if (typeof zero === 'string') return `meta page 0 ${zero}`;
  const one = readMeta(fd, 1, zero.pageSize, size);
  if (typeof one === 'string') return `meta page 1 ${one}`;
  if (one.pageSize !== zero.pageSize) return `meta page 1 has page size ${one.pageSize}, meta page 0 ${zero.pageSize}`;
  return new TreeWalk(fd, zero.txnid >= one.txnid ? zero : one, Math.floor(size / zero.pageSize)).damage();
}

/** Meta page `index` at `at`, or what is wrong with it. */
function readMeta(fd: number, index: number, at: number, size: number): Meta | string {
  const page = Buffer.alloc(META.end);
  if (readSync(fd, page, 0, META.end, at) < META.end) return `is cut off: the file is ${size} bytes`;
  if (page.readBigUInt64LE(0) !== BigInt(index) || (page.readUInt16LE(FLAGS) & P_META) === 0) return 'does not have the header of a meta page';
  const magic = page.readUInt32LE(META.magic);
  if (magic !== MDB_MAGIC) return `has magic 0x${magic.toString(16)}, not LMDB's 0x${MDB_MAGIC.toString(16)}`;
  const version = page.readUInt32LE(META.version) & 0xffff;
  if (version !== MDB_DATA_VERSION) return `has LMDB data version ${version}, not ${MDB_DATA_VERSION}`;
  const pageSize = page.readUInt32LE(META.freeTree);
  if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) return `has page size ${pageSize}`;
  const lastPage = pageNumber(page, META.lastPage);
  if (!(lastPage >= META_PAGES - 1 && (lastPage + 1) * pageSize <= Number.MAX_SAFE_INTEGER)) return `has last page ${page.readBigUInt64LE(META.lastPage)}`;
  const roots = [rootOf(page, META.freeTree), rootOf(page, META.mainTree)] as const;
  const outside = roots.find((root) => root !== undefined && !(root >= META_PAGES && root <= lastPage));
  if (outside !== undefined) return `has a tree root at page ${outside}, outside pages ${META_PAGES} to ${lastPage}`;
  return { pageSize, lastPage, txnid: page.readBigUInt64LE(META.txnid), roots };
}

/** The root page of the `MDB_db` record at `at`, undefined for an empty tree. */
function rootOf(page: Buffer, at: number): number | undefined {
  return page.readBigUInt64LE(at + DB_ROOT) === NO_PAGE ? undefined : pageNumber(page, at + DB_ROOT);
}

/** The 64-bit page number at `at`; NaN, which no range holds, when it is past any file's reach. */
function pageNumber(bytes: Buffer, at: number): number {
  const value = bytes.readBigUInt64LE(at);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(value);
}

/** A 32-bit size or page number kept in a node's two low 16-bit words. */
const nodeLow = (page: Buffer, node: number): number => page.readUInt16LE(node) + page.readUInt16LE(node + 2) * 0x10000;

/** The pages both trees of a meta page reach, read one by one. */
class TreeWalk {
  readonly #fd: number;
  readonly #meta: Meta;
  readonly #pagesInFile: number;
  readonly #page: Buffer;
  /** The first page of each branch, leaf and overflow page run reached: a healthy tree reaches each once. */
  readonly #seen = new Set<number>();
  /** Pages still to read, with the tree they belong to. */
  readonly #pending: { readonly page: number; readonly tree: string }[] = [];

  constructor(fd: number, meta: Meta, pagesInFile: number) {
    this.#fd = fd;
    this.#meta = meta;
    this.#pagesInFile = pagesInFile;
    this.#page = Buffer.alloc(meta.pageSize);
    const [free, main] = meta.roots;
    if (free !== undefined) this.#pending.push({ page: free, tree: 'free-page tree' });
    if (main !== undefined) this.#pending.push({ page: main, tree: 'main tree' });
  }

  /** What is wrong with the first page that does not fit, if any. */
  damage(): string | undefined {
    for (let next = this.#pending.pop(); next !== undefined; next = this.#pending.pop()) {
      const damage = this.#reach(next.page, 1, next.tree) ?? this.#branchOrLeaf(next.page, next.tree);
      if (damage !== undefined) return damage;
    }
    return undefined;
  }

  /** What is wrong with a tree reaching pages `first` … `first + count - 1`, if anything: outside the file, or reached before. */
  #reach(first: number, count: number, tree: string): string | undefined {
    const outside = this.#outside(first, count, tree);
    if (outside !== undefined) return outside;
    if (this.#seen.has(first)) return `the ${tree} reaches page ${first} twice`;
    this.#seen.add(first);
    return undefined;
  }

  /** What is wrong with pages `first` … `first + count - 1` being in use, if anything. */
  #outside(first: number, count: number, tree: string): string | undefined {
    const { lastPage, pageSize } = this.#meta;
    const end = first + count - 1;
    if (!(first >= META_PAGES && end <= lastPage)) return `the ${tree} reaches page ${first}${count > 1 ? ` (${count} pages)` : ''}, outside pages ${META_PAGES} to ${lastPage} of the meta in force`;
    if (end >= this.#pagesInFile) return `the ${tree} reaches page ${end}, past the end of the file (${this.#pagesInFile} whole pages of ${pageSize} bytes)`;
    return undefined;
  }

  /** Reads page `number`, queues the pages it points to and checks the overflow pages it points to. */
  #branchOrLeaf(number: number, tree: string): string | undefined {
    const page = this.#page;
    const { pageSize } = this.#meta;
    readSync(this.#fd, page, 0, pageSize, number * pageSize);
    const kind = page.readUInt16LE(FLAGS) & PAGE_KIND;
    if (page.readBigUInt64LE(0) !== BigInt(number) || (kind !== P_BRANCH && kind !== P_LEAF)) return `page ${number} of the ${tree} does not have the header of a branch or leaf page`;
    const lower = page.readUInt16LE(LOWER);
    const upper = page.readUInt16LE(UPPER);
    if (lower > upper || PAGE_HEADER + upper > pageSize) return `page ${number} of the ${tree} has its free space at ${lower} to ${upper}`;
    for (let i = 0; i < lower >> 1; i++) {
      const node = PAGE_HEADER + page.readUInt16LE(PAGE_HEADER + 2 * i);
      const outside = `node ${i} of page ${number} of the ${tree} does not lie inside its page`;
      if (node < PAGE_HEADER + upper || node + NODE_HEADER > pageSize) return outside;
      const flags = page.readUInt16LE(node + 4);
      const data = node + NODE_HEADER + page.readUInt16LE(node + 6);
      const dataBytes = kind === P_BRANCH ? 0 : (flags & F_BIGDATA) !== 0 ? 8 : (flags & F_SUBDATA) !== 0 ? DB_RECORD : nodeLow(page, node);
      if (data + dataBytes > pageSize) return outside;
      if (kind === P_BRANCH) {
        // A branch node keeps its child's page number in its size words and its flags (the top 16 bits).
        this.#pending.push({ page: nodeLow(page, node) + flags * 0x1_0000_0000, tree });
      } else if ((flags & F_BIGDATA) !== 0) {
        const damage = this.#overflow(pageNumber(page, data), nodeLow(page, node), tree);
        if (damage !== undefined) return damage;
      } else if ((flags & F_SUBDATA) !== 0) {
        const root = rootOf(page, data);
        if (root !== undefined) this.#pending.push({ page: root, tree: `${tree}'s sub-database` });
      }
    }
    return undefined;
  }

  /** What is wrong with the overflow pages from `first` that hold a value of `bytes` bytes, if anything. */
  #overflow(first: number, bytes: number, tree: string): string | undefined {
    const { pageSize } = this.#meta;
    const needed = Math.floor((PAGE_HEADER - 1 + bytes) / pageSize) + 1;
    const outside = this.#outside(first, 1, tree);
    if (outside !== undefined) return outside;
    const header = Buffer.alloc(PAGE_HEADER);
    readSync(this.#fd, header, 0, PAGE_HEADER, first * pageSize);
    const count = header.readUInt32LE(LOWER);
    if (header.readBigUInt64LE(0) !== BigInt(first) || (header.readUInt16LE(FLAGS) & PAGE_KIND) !== P_OVERFLOW || count < needed) {
      return `page ${first} of the ${tree} does not have the header of the ${needed} overflow pages of a ${bytes}-byte value`;
    }
    return this.#reach(first, count, tree);
  }
}
