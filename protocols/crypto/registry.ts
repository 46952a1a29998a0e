/**
 * The scheme registry: which backend computes each scheme. For every scheme, the first time it is
 * asked for, it takes the first backend, in preference order, that implements the scheme on this
 * Node and reproduces known answers on a probe (RFC 8032's for Ed25519, the reference backend
 * noble's for the others); a caller may force a backend instead. `report()` names the choice per
 * scheme, for telemetry (`crypto.backend`).
 *
 * Preference order is "fastest first": node:crypto (OpenSSL, native code) before noble (pure
 * JavaScript). The benchmarks measure the ratio; the registry itself never times anything, so it
 * stays deterministic.
 */
import { equalBytes } from '@noble/curves/utils.js';
import { nobleBackend } from './backends/noble.js';
import { nodeBackend } from './backends/node.js';
import { MLDSA44_ED25519, MLDSA65_ED25519, compositePrimitive, type CompositeParameters, type ComponentObserver } from './composite.js';
import { ED25519_KNOWN_ANSWER, ED25519_SPEC } from './ed25519.js';
import { CryptoError } from './errors.js';
import { FALCON_512_SPEC } from './falcon.js';
import { ML_DSA_44, ML_DSA_65, ML_DSA_87 } from './ml-dsa.js';
import type { Backend, Primitive, PrimitiveName } from './primitive.js';
import { defineScheme, type SchemeCategories, type SchemeName, type SchemeSpec, type SignatureScheme } from './scheme.js';
import { SLH_DSA_SHA2_128F_SPEC } from './slh-dsa.js';

/** How a scheme is computed: by one primitive, or as a composite of ML-DSA and Ed25519. */
type Recipe = { readonly spec: SchemeSpec; readonly primitive: PrimitiveName } | { readonly composite: CompositeParameters };

const RECIPES: Readonly<Record<SchemeName, Recipe>> = {
  'Ed25519': { spec: ED25519_SPEC, primitive: 'ed25519' },
  'ML-DSA-44': ML_DSA_44,
  'ML-DSA-65': ML_DSA_65,
  'ML-DSA-87': ML_DSA_87,
  'Falcon-512': { spec: FALCON_512_SPEC, primitive: 'falcon-512' },
  'SLH-DSA-SHA2-128f': { spec: SLH_DSA_SHA2_128F_SPEC, primitive: 'slh-dsa-sha2-128f' },
  'ML-DSA-65+Ed25519': { composite: MLDSA65_ED25519 },
  'ML-DSA-44+Ed25519': { composite: MLDSA44_ED25519 },
};

/** Every scheme name, in a stable order. */
export const SCHEME_NAMES = Object.keys(RECIPES) as readonly SchemeName[];

/** The hybrid scheme knhk uses unless configured otherwise. */
export const DEFAULT_HYBRID: SchemeName = 'ML-DSA-65+Ed25519';

const SPECS: Readonly<Record<PrimitiveName, SchemeSpec>> = {
  'ed25519': ED25519_SPEC,
  'ml-dsa-44': ML_DSA_44.spec,
  'ml-dsa-65': ML_DSA_65.spec,
  'ml-dsa-87': ML_DSA_87.spec,
  'falcon-512': FALCON_512_SPEC,
  'slh-dsa-sha2-128f': SLH_DSA_SHA2_128F_SPEC,
};

/** A backend forced instead of the registry's choice: one backend's name for every scheme, or a name per scheme. */
export type BackendChoice = string | Partial<Readonly<Record<SchemeName, string>>>;

/** Options of {@link SchemeRegistry.create}. */
export interface RegistryOptions {
  /** Backends in order of preference, fastest first. Default: node:crypto, then noble. */
  readonly backends?: readonly Backend[];
  /** Use this backend instead of choosing: one name for every scheme, or per scheme. */
  readonly force?: BackendChoice;
  /** Wraps each component call of the composite schemes (see `ComponentObserver`); default none. */
  readonly observeComponents?: ComponentObserver;
}

/** Verdicts of the known-answer probe, per backend and primitive: probed once per thread. */
const verdictsOf = new WeakMap<Backend, Map<PrimitiveName, boolean>>();

/** What a backend must reproduce to be trusted with a primitive (see {@link knownAnswer}). */
interface KnownAnswer {
  readonly seed: Uint8Array;
  /** The public key of `seed`. */
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly context: Uint8Array;
  /** A right signature of `message` by the key of `seed`. */
  readonly signature: Uint8Array;
  /** Whether `signature` is a right one of `message` by the key of `seed`. */
  readonly accepts: (message: Uint8Array, signature: Uint8Array) => boolean;
}

/**
 * The answers for primitive `name`. Ed25519's are RFC 8032's own; the others are computed by the
 * reference backend, noble. Ed25519 is the one every thread probes (node:crypto runs it on every
 * Node), and computing its answers with noble cost each thread about 0.1 s: noble builds its
 * precomputed tables on first use.
 */
function knownAnswer(name: PrimitiveName): KnownAnswer | undefined {
  if (name === 'ed25519') {
    const { seed, publicKey, message, signature } = ED25519_KNOWN_ANSWER;
    return { seed, publicKey, message, signature, context: new Uint8Array(0), accepts: (m, s) => equalBytes(m, message) && equalBytes(s, signature) };
  }
  const reference = nobleBackend.primitive(name);
  if (reference === undefined) return undefined;
  const spec = SPECS[name];
  const seed = new Uint8Array(spec.seedBytes).fill(0x5a);
  const message = Uint8Array.of(1, 2, 3);
  const context = spec.contextSupported ? Uint8Array.of(9) : new Uint8Array(0);
  const { publicKey, secretKey } = reference.keygen(seed);
  return { seed, publicKey, message, context, signature: reference.sign(secretKey, message, context), accepts: (m, s) => reference.verify(publicKey, m, s, context) };
}

/**
 * Whether `candidate` computes `name` as it must: the known public key from the known seed, a
 * signature the answers accept, the known signature accepted, and neither signature taken for
 * another message. A backend that fails is never chosen.
 */
function reproducesKnownAnswers(backend: Backend, name: PrimitiveName, candidate: Primitive): boolean {
  if (backend === nobleBackend) return true;
  let verdicts = verdictsOf.get(backend);
  if (verdicts === undefined) verdictsOf.set(backend, (verdicts = new Map()));
  let verdict = verdicts.get(name);
  if (verdict === undefined) {
    verdict = probe(candidate, () => knownAnswer(name));
    verdicts.set(name, verdict);
  }
  return verdict;
}

function probe(candidate: Primitive, answers: () => KnownAnswer | undefined): boolean {
  try {
    const answer = answers();
    if (answer === undefined) return false;
    const { seed, message, context, signature } = answer;
    // Another message of the same length: a backend that drops or misreads a byte fails on it.
    const other = Uint8Array.from(message, (byte, i) => (i === message.length - 1 ? byte ^ 1 : byte));
    const mine = candidate.keygen(seed);
    if (!equalBytes(mine.publicKey, answer.publicKey)) return false;
    const bySelf = candidate.sign(mine.secretKey, message, context);
    return (
      answer.accepts(message, bySelf) &&
      candidate.verify(mine.publicKey, message, signature, context) &&
      !candidate.verify(mine.publicKey, other, signature, context) &&
      !answer.accepts(other, bySelf)
    );
  } catch {
    return false;
  }
}

function findBackend(backends: readonly Backend[], name: string): Backend {
  const found = backends.find((b) => b.name === name);
  if (found === undefined) throw new CryptoError('UNKNOWN_BACKEND', `unknown crypto backend ${name}`);
  return found;
}

/** The first of `candidates` that runs primitive `name` and reproduces its known answers. */
function choose(name: PrimitiveName, candidates: readonly Backend[]): { backend: Backend; primitive: Primitive } | undefined {
  for (const backend of candidates) {
    const primitive = backend.primitive(name);
    if (primitive !== undefined && reproducesKnownAnswers(backend, name, primitive)) return { backend, primitive };
  }
  return undefined;
}

/** Scheme `name` on the first usable of `candidates`, chosen per component for a composite, whose component calls `observe` wraps. */
function build(name: SchemeName, candidates: readonly Backend[], observe: ComponentObserver | undefined): SignatureScheme | undefined {
  const recipe = RECIPES[name];
  if (recipe === undefined) throw new CryptoError('UNKNOWN_SCHEME', `unknown signature scheme ${String(name)}`);
  if ('primitive' in recipe) {
    const chosen = choose(recipe.primitive, candidates);
    return chosen && defineScheme(recipe.spec, chosen.primitive, chosen.backend.name);
  }
  const { composite } = recipe;
  const mlDsa = choose(composite.mlDsa.primitive, candidates);
  const ed25519 = choose('ed25519', candidates);
  if (mlDsa === undefined || ed25519 === undefined) return undefined;
  // One name when both components share a backend; otherwise "<ML-DSA's>+<Ed25519's>".
  const backend = mlDsa.backend === ed25519.backend ? mlDsa.backend.name : `${mlDsa.backend.name}+${ed25519.backend.name}`;
  return defineScheme(composite.spec, compositePrimitive(composite, mlDsa.primitive, ed25519.primitive, observe), backend);
}

/**
 * The chosen schemes, one backend each. A scheme's backend is chosen the first time the scheme is
 * asked for, so a thread probes only the primitives it uses: on a Node with native ML-DSA, probing
 * all three parameter sets against noble at start-up cost each thread about 0.15 s.
 */
export class SchemeRegistry {
  private readonly backends: readonly Backend[];
  /** The backends each scheme may run on, in preference order: one when forced. */
  private readonly candidates: ReadonlyMap<SchemeName, readonly Backend[]>;
  private readonly schemes = new Map<SchemeName, SignatureScheme>();
  private readonly observe: ComponentObserver | undefined;

  private constructor(backends: readonly Backend[], candidates: ReadonlyMap<SchemeName, readonly Backend[]>, observe: ComponentObserver | undefined) {
    this.backends = backends;
    this.candidates = candidates;
    this.observe = observe;
  }

  /**
   * A registry over `backends`. A forced backend is probed at once, so that one that cannot serve
   * is refused here rather than at a first signature; the others are probed on first use.
   * @throws {CryptoError} `UNKNOWN_BACKEND` when `force` names a backend not in `backends`,
   *   `BACKEND_UNAVAILABLE` when a forced backend cannot run a scheme or fails its probe.
   */
  static create(options: RegistryOptions = {}): SchemeRegistry {
    const backends = options.backends ?? [nodeBackend, nobleBackend];
    const candidates = new Map<SchemeName, readonly Backend[]>();
    const forcedNames: SchemeName[] = [];
    for (const name of SCHEME_NAMES) {
      const forced = typeof options.force === 'string' ? options.force : options.force?.[name];
      candidates.set(name, forced === undefined ? backends : [findBackend(backends, forced)]);
      if (forced !== undefined) forcedNames.push(name);
    }
    const registry = new SchemeRegistry(backends, candidates, options.observeComponents);
    for (const name of forcedNames) registry.get(name);
    return registry;
  }

  /**
   * The scheme `name` on its chosen backend.
   * @throws {CryptoError} `UNKNOWN_SCHEME`, and `BACKEND_UNAVAILABLE` when no candidate backend
   *   passes its probe (only a broken backend fails it; noble, the reference, always passes).
   */
  get<N extends SchemeName>(name: N): SignatureScheme<SchemeCategories[N]> {
    let scheme = this.schemes.get(name);
    if (scheme === undefined) {
      const candidates = this.candidates.get(name);
      if (candidates === undefined) throw new CryptoError('UNKNOWN_SCHEME', `unknown signature scheme ${String(name)}`);
      scheme = build(name, candidates, this.observe);
      if (scheme === undefined) throw new CryptoError('BACKEND_UNAVAILABLE', `${name}: no usable backend among ${candidates.map((b) => b.name).join(', ')}`);
      this.schemes.set(name, scheme);
    }
    return scheme as SignatureScheme<SchemeCategories[N]>;
  }

  /**
   * The scheme `name` computed by the backend named `backend` (both components, for a composite),
   * or `undefined` when that backend cannot run it here. For cross-backend checks and benchmarks.
   */
  onBackend<N extends SchemeName>(name: N, backend: string): SignatureScheme<SchemeCategories[N]> | undefined {
    return build(name, [findBackend(this.backends, backend)], this.observe) as SignatureScheme<SchemeCategories[N]> | undefined;
  }

  /** The backend chosen for each scheme, e.g. `{ 'ML-DSA-65': 'node', 'Falcon-512': 'noble', … }`. */
  report(): Readonly<Record<SchemeName, string>> {
    return Object.fromEntries(SCHEME_NAMES.map((name) => [name, this.get(name).backend])) as Record<SchemeName, string>;
  }
}
