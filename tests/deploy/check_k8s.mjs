// tests/deploy/check_k8s.mjs <k8s dir> <tickplane> <certs dir>: validates deploy/k8s.
//
// 1. Schema, strict: every object is checked against the Kubernetes 1.27 OpenAPI schema that
//    kubernetes-models ships (the same definitions kubeconform uses), with unknown fields refused
//    (kubeconform -strict): a misspelt field would otherwise be dropped by the API server in
//    silence. YAML is read as YAML 1.1, as the API server's parser does (0440 is octal, `yes` a
//    boolean).
// 2. The rules of deploy/README.md that a schema cannot express: probes, drain timing, TLS mount,
//    single-writer partitions, labels and references between the objects.
// 3. The ConfigMap through tickplane's own parser (--check-config), with only its names known.
//
// Prints "ok: ..." / "FAIL: ..." per check; exits 1 if any failed.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { parseAllDocuments } from "yaml";

const [dir, tickplane, certs] = process.argv.slice(2);
if (!certs) {
    console.error("usage: check_k8s.mjs <k8s dir> <tickplane> <certs dir>");
    process.exit(2);
}
let failures = 0;
function check(what, cond, detail = "") {
    console.log(`${cond ? "ok" : "FAIL"}: ${what}${cond || !detail ? "" : " -- " + detail}`);
    if (!cond) failures++;
    return cond;
}

// ---- the schemas -------------------------------------------------------------------------------

const require = createRequire(import.meta.url);
const modelsPackage = require.resolve("kubernetes-models/package.json");
const modelsRequire = createRequire(modelsPackage);

// kubernetes-models registers each definition through @kubernetes-models/validate's register();
// a stand-in module collects them instead, so that they can be compiled strict.
function loadSchemas() {
    const schemas = new Map();
    const validatePath = modelsRequire.resolve("@kubernetes-models/validate");
    require.cache[validatePath] = {
        id: validatePath, filename: validatePath, loaded: true,
        exports: { register: (id, schema) => schemas.set(id, schema), validate() {} },
    };
    const schemaDirs = [join(dirname(modelsPackage), "_schemas"),
        join(dirname(modelsRequire.resolve("@kubernetes-models/apimachinery/package.json")),
            "_schemas")];
    for (const d of schemaDirs)
        for (const f of readdirSync(d).filter((f) => f.endsWith(".js")))
            require(join(d, f)).addSchema?.();
    return schemas;
}

// Refuses properties a definition does not list, where it lists them (kubeconform -strict).
function strict(schema) {
    if (Array.isArray(schema)) return schema.map(strict);
    if (schema === null || typeof schema !== "object") return schema;
    const out = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, strict(v)]));
    if (out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
    return out;
}

function compile(schemas) {
    const validateRequire = createRequire(modelsRequire.resolve("@kubernetes-models/validate"));
    const Ajv = validateRequire("ajv").default;
    const ajv = new Ajv({ strictTypes: false, strict: false, allErrors: true });
    validateRequire("ajv-formats").default(ajv);
    validateRequire("ajv-formats-draft2019")(ajv);
    // Kubernetes quantities: a signed decimal with an optional binary, decimal or exponent suffix.
    ajv.addFormat("quantity", /^[+-]?(\d+\.?\d*|\.\d+)([KMGTPE]i|[mkMGTPE]|[eE][+-]?\d+)?$/);
    for (const f of ["int32", "int64", "double", "byte", "string", "date-time"])
        if (!ajv.formats[f]) ajv.addFormat(f, true);
    for (const [id, schema] of schemas) ajv.addSchema(strict(schema), id);
    return ajv;
}

// "apps/v1" + "Deployment" -> io.k8s.api.apps.v1.Deployment; "v1" -> the core group.
function schemaId(apiVersion, kind) {
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
    return `io.k8s.api.${group.replace(/\.k8s\.io$/, "")}.${version}.${kind}`;
}

// The one error that matters: the deepest, without the "or null" alternatives of each $ref.
function describe(errors) {
    const real = errors.filter((e) => e.keyword !== "oneOf" && !(e.keyword === "type" &&
        e.params.type === "null"));
    const e = real.sort((a, b) => b.instancePath.length - a.instancePath.length)[0] ?? errors[0];
    const extra = e.params.additionalProperty ? ` "${e.params.additionalProperty}"` : "";
    return `${e.instancePath || "/"} ${e.message}${extra}`;
}

// ---- the manifests -----------------------------------------------------------------------------

function readManifests() {
    const objects = [];
    for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
        const docs = parseAllDocuments(readFileSync(join(dir, f), "utf8"), { version: "1.1" });
        const errors = docs.flatMap((d) => d.errors);
        check(`${f}: parses as YAML`, errors.length === 0, errors.join("; "));
        for (const doc of docs) {
            const obj = doc.toJS();
            if (obj) objects.push({ file: f, obj });
        }
    }
    return objects;
}

function checkSchemas(objects, ajv) {
    for (const { file, obj } of objects) {
        if (obj.kind === "Kustomization") continue;
        const id = schemaId(obj.apiVersion, obj.kind);
        const validate = ajv.getSchema(id);
        if (!check(`${file}: ${obj.kind} has a schema (${id})`, !!validate)) continue;
        const ok = validate(obj);
        check(`${file}: ${obj.kind}/${obj.metadata?.name} is valid (strict)`, ok,
            ok ? "" : describe(validate.errors));
    }
}

// ---- the rules ---------------------------------------------------------------------------------

const seconds = (text) => {
    const m = /^(\d+)(ms|s)?$/.exec(text ?? "");
    return m ? Number(m[1]) / (m[2] === "s" ? 1 : 1000) : NaN;
};
// "16MiB" (tickplane) or "256Mi" (Kubernetes) -> bytes.
const bytes = (text) => {
    const m = /^(\d+)(Ki|Mi|Gi|KiB|MiB|GiB)?$/.exec(text ?? "");
    return m ? Number(m[1]) * 1024 ** ({ K: 1, M: 2, G: 3 }[m[2]?.[0]] ?? 0) : NaN;
};
const matches = (selector, labels) =>
    Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

function checkRules(objects) {
    const of = (kind) => objects.filter((o) => o.obj.kind === kind).map((o) => o.obj);
    const [deploy] = of("Deployment");
    const [config] = of("ConfigMap");
    const secrets = of("Secret");
    if (!check("one Deployment and one ConfigMap", of("Deployment").length === 1 && !!config))
        return;
    const pod = deploy.spec.template.spec;
    const c = pod.containers[0];
    const port = (name) => c.ports?.find((p) => p.name === name);

    check("one pod per partition: replicas 1, strategy Recreate",
        deploy.spec.replicas === 1 && deploy.spec.strategy?.type === "Recreate");
    check("liveness and startup probes GET /livez, readiness GET /readyz",
        c.livenessProbe?.httpGet?.path === "/livez" && c.startupProbe?.httpGet?.path === "/livez" &&
        c.readinessProbe?.httpGet?.path === "/readyz");
    const metricsPort = Number(config.data.TP_METRICS_ADDR?.split(":").pop());
    check("the probes use the metrics port, which TP_METRICS_ADDR listens on",
        [c.livenessProbe, c.startupProbe, c.readinessProbe].every(
            (p) => port(p.httpGet.port)?.containerPort === metricsPort));
    const preStop = c.lifecycle?.preStop?.exec?.command;
    const sleep = preStop?.[0] === "sleep" ? Number(preStop[1]) : NaN;
    const drain = seconds(config.data.TP_SHUTDOWN_TIMEOUT);
    check("terminationGracePeriodSeconds covers preStop + TP_SHUTDOWN_TIMEOUT + 5 s",
        pod.terminationGracePeriodSeconds >= sleep + drain + 5,
        `${pod.terminationGracePeriodSeconds} < ${sleep} + ${drain} + 5`);
    check("service links off (they would set REDIS_PORT=tcp://...)",
        pod.enableServiceLinks === false);
    check("non-root, read-only root, no privilege escalation, all capabilities dropped",
        pod.securityContext?.runAsNonRoot === true && c.securityContext?.readOnlyRootFilesystem &&
        c.securityContext?.allowPrivilegeEscalation === false &&
        c.securityContext?.capabilities?.drop?.includes("ALL"));
    const queued = Number(config.data.REDIS_POOL_MAX_SIZE ?? 4) *
        bytes(config.data.REDIS_MAX_QUEUED_BYTES ?? "1MiB"); // the default
    check("the memory limit holds twice what may be queued for a slow Redis (pool x queued bytes)",
        2 * queued <= bytes(c.resources?.limits?.memory), `${queued} queued bytes`);
    check("Guaranteed QoS: requests equal limits",
        JSON.stringify(c.resources?.requests) === JSON.stringify(c.resources?.limits) &&
        !!c.resources?.limits?.cpu && !!c.resources?.limits?.memory);

    check("envFrom names the ConfigMap",
        c.envFrom?.some((e) => e.configMapRef?.name === config.metadata.name));
    const pw = c.env?.find((e) => e.name === "REDIS_PASSWORD")?.valueFrom?.secretKeyRef;
    const auth = secrets.find((s) => s.metadata.name === pw?.name);
    check("REDIS_PASSWORD comes from a key of a Secret in secrets.yaml",
        auth && pw.key in { ...auth.data, ...auth.stringData });
    const tlsMounts = c.volumeMounts?.filter((m) =>
        pod.volumes?.find((v) => v.name === m.name)?.secret);
    check("the TLS Secret is mounted as a directory, without subPath",
        tlsMounts?.length > 0 && tlsMounts.every((m) => m.subPath === undefined &&
            m.subPathExpr === undefined && m.readOnly === true));
    const tlsVolume = pod.volumes.find((v) => v.secret);
    const tls = secrets.find((s) => s.metadata.name === tlsVolume?.secret?.secretName);
    check("the mounted Secret is of type kubernetes.io/tls with tls.crt, tls.key, ca.crt",
        tls?.type === "kubernetes.io/tls" &&
        ["tls.crt", "tls.key", "ca.crt"].every((k) => k in (tls.data ?? {})));
    const mount = tlsMounts?.[0]?.mountPath;
    check("REDIS_TLS_*_PATH point into the mounted Secret",
        ["REDIS_TLS_CA_PATH", "REDIS_TLS_CERT_PATH", "REDIS_TLS_KEY_PATH"].every((k) =>
            dirname(config.data[k] ?? "") === mount &&
            basename(config.data[k]) in (tls?.data ?? {})));

    const labels = deploy.spec.template.metadata.labels;
    check("the Deployment's selector matches its pods", matches(deploy.spec.selector.matchLabels,
        labels));
    for (const svc of of("Service")) {
        check(`Service ${svc.metadata.name} selects the pods`, matches(svc.spec.selector, labels));
        for (const p of svc.spec.ports)
            check(`Service port ${p.name} targets container port ${p.targetPort} (${p.protocol})`,
                port(p.targetPort)?.protocol === p.protocol);
    }
    for (const want of ["feed-tcp", "feed-udp", "metrics"])
        check(`a Service exposes ${want}`, of("Service").some((s) =>
            s.spec.ports.some((p) => p.targetPort === want)));
    const pdbs = of("PodDisruptionBudget");
    check("a PodDisruptionBudget covers the pods, and keeps the single writer (minAvailable 1)",
        pdbs.length === 1 && matches(pdbs[0].spec.selector.matchLabels, labels) &&
        pdbs[0].spec.minAvailable === 1);
}

function checkKustomization(objects) {
    const k = objects.find((o) => o.obj.kind === "Kustomization");
    if (!check("kustomization.yaml exists", !!k)) return;
    const listed = new Set(k.obj.resources);
    const files = new Set(objects.map((o) => o.file).filter((f) => f !== k.file));
    check("kustomization lists every manifest but the Secret templates",
        [...files].every((f) => listed.has(f) === (f !== "secrets.yaml")) &&
        [...listed].every((f) => files.has(f)), [...listed].join(" "));
}

// ---- the ConfigMap through tickplane -----------------------------------------------------------

function checkConfigWithTickplane(objects) {
    const config = objects.find((o) => o.obj.kind === "ConfigMap").obj;
    const help = spawnSync(tickplane, ["--help"], { encoding: "utf8" }).stdout;
    const known = new Set(help.match(/\b(?:REDIS|TP)_[A-Z_]+\b/g));
    const unknown = Object.keys(config.data).filter((k) => !known.has(k));
    check("every ConfigMap key is a tickplane setting", unknown.length === 0, unknown.join(" "));
    check("every ConfigMap value is a string", Object.values(config.data).every(
        (v) => typeof v === "string"));
    // The certificate files exist only in the pod; the test's own stand in for them.
    const env = Object.fromEntries(Object.entries(process.env).filter(
        ([k]) => !/^(REDIS|TP)_/.test(k)));
    Object.assign(env, config.data, {
        REDIS_PASSWORD: "a-password-from-the-secret",
        REDIS_TLS_CA_PATH: join(certs, "ca.crt"),
        REDIS_TLS_CERT_PATH: join(certs, "client.crt"),
        REDIS_TLS_KEY_PATH: join(certs, "client.key"),
    });
    const run = spawnSync(tickplane, ["--check-config"], { env, encoding: "utf8" });
    check("tickplane --check-config accepts the ConfigMap", run.status === 0,
        (run.stdout + run.stderr).trim().split("\n").pop());
}

const objects = readManifests();
checkSchemas(objects, compile(loadSchemas()));
checkRules(objects);
checkKustomization(objects);
checkConfigWithTickplane(objects);
console.log(`${failures} failed`);
process.exit(failures ? 1 : 0);
