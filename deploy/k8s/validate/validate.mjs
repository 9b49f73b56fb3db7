// Validates Kubernetes manifests offline, as one set (run through
// deploy/validate-k8s.sh):
//
//   node validate.mjs FILE_OR_DIR...
//
// Every document of every *.yaml / *.yml file (multi-document files, YAML
// errors and duplicate keys reported with their line) is checked three ways:
//
// 1. Schema: the JSON Schema of its apiVersion/kind, compiled from the
//    Kubernetes OpenAPI definitions (kubernetes-models 4.5.1: Kubernetes
//    1.27.1) or from the CRD (@kubernetes-models/prometheus-operator for
//    monitoring.coreos.com), validated with ajv: types, required fields,
//    enums, formats. A kind with no schema is an error.
// 2. Unknown fields: JSON Schema as Kubernetes publishes it allows any extra
//    property, so a misspelt field (readinesProbe) would pass and then be
//    dropped, or refused by the API server's strict field validation. Each
//    document is type-checked by the TypeScript compiler against the same
//    models' type declarations, and its excess-property errors are reported
//    ("unknown field").
// 3. References within the set, which no schema can express: selectors
//    against pod labels, Service and probe ports against container ports,
//    HPA targets and custom metrics against the prometheus-adapter rules,
//    ServiceMonitor selectors and ports, PVC claims, $(VAR) in args, and
//    terminationGracePeriodSeconds against preStop sleep + drain timeout.
//
// Prints one line per document and per problem (file:line: Kind/name:
// field: message) and exits 1 if there is any problem.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse as parseYaml, LineCounter } from "yaml";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));
const CRD_PACKAGES = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const problems = [];
let documentCount = 0;

function relative(file) {
  return path.relative(process.cwd(), file) || file;
}

function report(entry, field, message) {
  const where = `${relative(entry.file)}:${entry.lineOf(field)}`;
  const what = entry.id ? `${entry.id}: ` : "";
  const at = field && field.length ? `${formatPath(field)}: ` : "";
  problems.push(`${where}: ${what}${at}${message}`);
}

function formatPath(field) {
  return field
    .map((p, i) => (typeof p === "number" ? `[${p}]` : i ? `.${p}` : p))
    .join("");
}

// ------------------------------------------------------------------ input
function collectFiles(args) {
  const files = [];
  const walk = (p) => {
    const stat = fs.statSync(p);
    if (stat.isDirectory()) {
      for (const name of fs.readdirSync(p).sort()) {
        if (name === "node_modules" || name.startsWith(".")) continue;
        walk(path.join(p, name));
      }
    } else if (/\.ya?ml$/.test(p)) {
      files.push(path.resolve(p));
    }
  };
  for (const arg of args) {
    if (!fs.existsSync(arg)) {
      problems.push(`${arg}: no such file or directory`);
      continue;
    }
    walk(arg);
  }
  return files;
}

function loadDocuments(file) {
  const text = fs.readFileSync(file, "utf8");
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const entries = [];
  for (const doc of docs) {
    const lineAt = (offset) => lineCounter.linePos(offset).line;
    const docLine = lineAt(doc.contents?.range?.[0] ?? doc.range?.[0] ?? 0);
    const base = { file, id: "", lineOf: () => docLine };
    if (doc.errors.length) {
      for (const e of doc.errors) {
        problems.push(`${relative(file)}:${lineAt(e.pos[0])}: YAML: ${e.message.split("\n")[0]}`);
      }
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;  // an empty document
    const entry = {
      ...base,
      obj,
      docLine,
      // The line of a field (path of keys and indexes), or of the nearest
      // parent that exists.
      lineOf(field = []) {
        for (let n = field.length; n >= 0; n--) {
          const node = doc.getIn(field.slice(0, n), true);
          if (node && node.range) return lineAt(node.range[0]);
        }
        return docLine;
      },
    };
    if (typeof obj !== "object" || Array.isArray(obj)) {
      report(entry, [], "a manifest must be a mapping");
      continue;
    }
    if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
      report(entry, [], "apiVersion and kind are required strings");
      continue;
    }
    entry.id = `${obj.kind}/${obj.metadata?.name ?? "(no name)"}`;
    entries.push(entry);
  }
  return entries;
}

// ------------------------------------------------------------------ 1. schema
function modelSpecifier(apiVersion, kind) {
  const slash = apiVersion.indexOf("/");
  const group = slash < 0 ? "" : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  if (!/^[a-z0-9.-]*$/.test(group) || !/^v[0-9]+[a-z0-9]*$/.test(version) ||
      !/^[A-Z][A-Za-z0-9]*$/.test(kind)) {
    return null;
  }
  if (group in CRD_PACKAGES) return `${CRD_PACKAGES[group]}/${group}/${version}/${kind}`;
  if (group.includes(".") && !group.endsWith(".k8s.io")) return null;
  return `kubernetes-models/${group ? `${group}/` : ""}${version}/${kind}`;
}

async function checkSchema(entry) {
  const { apiVersion, kind } = entry.obj;
  const specifier = modelSpecifier(apiVersion, kind);
  let Model;
  if (specifier) {
    try {
      Model = (await import(specifier))[kind];
    } catch {
      Model = undefined;
    }
  }
  if (typeof Model !== "function") {
    report(entry, ["kind"], `no schema for apiVersion ${apiVersion}, kind ${kind}`);
    return false;
  }
  entry.specifier = specifier;
  try {
    new Model(entry.obj).validate();
  } catch (e) {
    if (!Array.isArray(e.errors)) throw e;
    for (const err of e.errors) {
      const field = err.instancePath
        .split("/")
        .slice(1)
        .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
        .map((s) => (/^[0-9]+$/.test(s) ? Number(s) : s));
      let message = err.message;
      if (err.keyword === "enum") message += `: ${err.params.allowedValues.join(", ")}`;
      if (err.keyword === "additionalProperties") message += `: ${err.params.additionalProperty}`;
      report(entry, field, message);
    }
  }
  return true;
}

// ------------------------------------------------------------------ 2. unknown fields
// Writes `obj` as a TypeScript object literal, one property per line, and
// records which field each line holds.
function toTypeScript(obj, lines, fieldOfLine) {
  const emit = (value, field, indent, prefix, suffix) => {
    const pad = "  ".repeat(indent);
    if (Array.isArray(value)) {
      lines.push(`${pad}${prefix}[`);
      fieldOfLine.push(field);
      value.forEach((v, i) => emit(v, [...field, i], indent + 1, "", ","));
      lines.push(`${pad}]${suffix}`);
      fieldOfLine.push(field);
    } else if (value !== null && typeof value === "object") {
      lines.push(`${pad}${prefix}{`);
      fieldOfLine.push(field);
      for (const [k, v] of Object.entries(value)) {
        // Plain identifiers unquoted, so that TypeScript suggests the
        // field that was meant ("Did you mean to write ...?").
        const key = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? k : JSON.stringify(k);
        emit(v, [...field, k], indent + 1, `${key}: `, ",");
      }
      lines.push(`${pad}}${suffix}`);
      fieldOfLine.push(field);
    } else {
      lines.push(`${pad}${prefix}${JSON.stringify(value)}${suffix}`);
      fieldOfLine.push(field);
    }
  };
  emit(obj, [], 0, "", "");
}

function checkUnknownFields(entries) {
  const sources = new Map();
  entries.forEach((entry, i) => {
    if (!entry.specifier) return;
    const file = path.join(here, "__manifests__", `doc${i}.ts`);
    const lines = [], fieldOfLine = [];
    toTypeScript(entry.obj, lines, fieldOfLine);
    const header = [
      `import type { I${entry.obj.kind} as Manifest } from ${JSON.stringify(entry.specifier)};`,
      "export const manifest: Manifest =",
    ];
    const text = `${header.join("\n")}\n${lines.join("\n")};\n`;
    sources.set(file, { text, entry, fieldOfLine, headerLines: header.length });
  });
  if (sources.size === 0) return;
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, languageVersion, ...rest) => {
    const source = sources.get(path.resolve(name));
    if (source) return ts.createSourceFile(name, source.text, languageVersion, true);
    return getSourceFile(name, languageVersion, ...rest);
  };
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => sources.has(path.resolve(name)) || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => sources.get(path.resolve(name))?.text ?? readFile(name);
  const program = ts.createProgram([...sources.keys()], options, host);
  // 2353: "Object literal may only specify known properties, and 'x' does
  // not exist in type 'T'"; 2561: the same with "Did you mean to write 'y'?".
  const unknownField = new Set([2353, 2561]);
  for (const diag of ts.getPreEmitDiagnostics(program)) {
    const source = diag.file && sources.get(path.resolve(diag.file.fileName));
    const text = ts.flattenDiagnosticMessageText(diag.messageText, " ");
    if (!source) {
      problems.push(`validator: TypeScript: ${text}`);
      continue;
    }
    if (diag.start === undefined || diag.start < source.text.indexOf("\n")) {
      // On the import line: the type declarations were not found.
      problems.push(`validator: TypeScript: ${text}`);
      continue;
    }
    if (!unknownField.has(diag.code)) continue;  // types: the schema's job
    const { line } = diag.file.getLineAndCharacterOfPosition(diag.start);
    const field = source.fieldOfLine[line - source.headerLines] ?? [];
    const name = /'([^']+)' does not exist in type/.exec(text)?.[1]?.replace(/^"(.*)"$/, "$1");
    const hint = / Did you mean to write '([^']+)'\?/.exec(text)?.[1];
    report(source.entry, field,
           `unknown field${name ? ` "${name}"` : ""}${hint ? ` (did you mean "${hint}"?)` : ""}`);
  }
}

// ------------------------------------------------------------------ 3. references
const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"]);

function matches(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

function namespaceOf(entry) {
  return entry.obj.metadata?.namespace ?? "";
}

function podTemplates(entries) {
  const out = [];
  for (const e of entries) {
    if (WORKLOADS.has(e.obj.kind)) {
      out.push({ entry: e, base: ["spec", "template"], template: e.obj.spec?.template });
    } else if (e.obj.kind === "Job") {
      out.push({ entry: e, base: ["spec", "template"], template: e.obj.spec?.template });
    }
  }
  return out.filter((t) => t.template);
}

function checkReferences(entries) {
  const byKind = (kind) => entries.filter((e) => e.obj.kind === kind);
  const templates = podTemplates(entries);
  const servingTemplates = templates.filter((t) => WORKLOADS.has(t.entry.obj.kind));

  // Workloads: the selector selects the template; containers' own refs.
  for (const t of templates) {
    const { entry, base, template } = t;
    const spec = template.spec ?? {};
    if (WORKLOADS.has(entry.obj.kind)) {
      const selector = entry.obj.spec?.selector?.matchLabels;
      if (!selector || !matches(selector, template.metadata?.labels)) {
        report(entry, ["spec", "selector"], "selector.matchLabels does not match spec.template.metadata.labels");
      }
    }
    const volumes = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
    (spec.volumes ?? []).forEach((v, i) => {
      const claim = v.persistentVolumeClaim?.claimName;
      if (claim && !byKind("PersistentVolumeClaim").some(
          (p) => p.obj.metadata?.name === claim && namespaceOf(p) === namespaceOf(entry))) {
        report(entry, [...base, "spec", "volumes", i, "persistentVolumeClaim", "claimName"],
               `no PersistentVolumeClaim "${claim}" in the set`);
      }
    });
    (spec.containers ?? []).forEach((c, ci) => {
      const at = [...base, "spec", "containers", ci];
      const ports = c.ports ?? [];
      const portOk = (p) => typeof p === "number"
        ? ports.some((q) => q.containerPort === p)
        : ports.some((q) => q.name === p);
      for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const pr = c[probe];
        if (!pr) continue;
        const port = pr.grpc?.port ?? pr.httpGet?.port ?? pr.tcpSocket?.port;
        if (port !== undefined && !portOk(port)) {
          report(entry, [...at, probe], `probe port ${port} is not a port of container "${c.name}"`);
        }
      }
      (c.volumeMounts ?? []).forEach((m, mi) => {
        if (!volumes.has(m.name)) {
          report(entry, [...at, "volumeMounts", mi, "name"], `no volume "${m.name}" in the pod`);
        }
      });
      const env = new Set((c.env ?? []).map((v) => v.name));
      [...(c.command ?? []), ...(c.args ?? [])].forEach((arg) => {
        for (const m of String(arg).matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
          if (!env.has(m[1])) {
            report(entry, [...at, "args"], `$(${m[1]}) is not an env variable of the container (it would stay literal)`);
          }
        }
      });
      (c.env ?? []).forEach((v, vi) => {
        const ref = v.valueFrom?.resourceFieldRef;
        if (ref?.containerName && !(spec.containers ?? []).some((x) => x.name === ref.containerName)) {
          report(entry, [...at, "env", vi], `resourceFieldRef names no container "${ref.containerName}"`);
        }
        if (ref && /^limits\./.test(ref.resource) &&
            c.resources?.limits?.[ref.resource.slice(7)] === undefined) {
          report(entry, [...at, "env", vi], `${ref.resource} is not set: the variable gets the node's allocatable`);
        }
      });
      // Shutdown budget: preStop sleep + --drain_timeout_s must fit.
      const sleep = c.lifecycle?.preStop?.exec?.command;
      const sleepS = Array.isArray(sleep) && /(^|\/)sleep$/.test(sleep[0]) ? Number(sleep[1]) : 0;
      const drainArg = (c.args ?? []).map(String).find((a) => /^--?drain_timeout_s=/.test(a));
      if (drainArg || sleepS) {
        const drainS = drainArg ? Number(drainArg.split("=")[1]) : 30;
        const grace = spec.terminationGracePeriodSeconds ?? 30;
        if (!(grace > sleepS + drainS)) {
          report(entry, [...base, "spec", "terminationGracePeriodSeconds"],
                 `${grace} s is not more than preStop sleep (${sleepS} s) + --drain_timeout_s (${drainS} s): SIGKILL would cut the drain`);
        }
      }
    });
  }

  // Services: the selector selects a pod template; target ports exist.
  for (const svc of byKind("Service")) {
    const selector = svc.obj.spec?.selector;
    if (!selector) continue;
    const selected = servingTemplates.filter((t) =>
      namespaceOf(t.entry) === namespaceOf(svc) && matches(selector, t.template.metadata?.labels));
    if (!selected.length) {
      report(svc, ["spec", "selector"], "selects no pod template in the set");
      continue;
    }
    (svc.obj.spec.ports ?? []).forEach((p, i) => {
      const target = p.targetPort ?? p.port;
      const ok = selected.every((t) => (t.template.spec?.containers ?? []).some((c) =>
        (c.ports ?? []).some((q) => (typeof target === "number" ? q.containerPort === target : q.name === target))));
      if (!ok) report(svc, ["spec", "ports", i, "targetPort"], `no container port ${target} in the selected pods`);
    });
  }

  // PodDisruptionBudgets select pods.
  for (const pdb of byKind("PodDisruptionBudget")) {
    const selector = pdb.obj.spec?.selector?.matchLabels;
    if (!servingTemplates.some((t) => matches(selector, t.template.metadata?.labels))) {
      report(pdb, ["spec", "selector"], "selects no pod template in the set");
    }
  }

  // prometheus-adapter rules (a ConfigMap whose config.yaml has rules).
  const adapterMetrics = new Set();
  for (const cm of byKind("ConfigMap")) {
    const raw = cm.obj.data?.["config.yaml"];
    if (typeof raw !== "string" || !/^\s*rules\s*:/m.test(raw)) continue;
    let config;
    try {
      config = parseYaml(raw, { uniqueKeys: true });
    } catch (e) {
      report(cm, ["data", "config.yaml"], `prometheus-adapter config: ${e.message.split("\n")[0]}`);
      continue;
    }
    (config?.rules ?? []).forEach((rule, i) => {
      const field = ["data", "config.yaml"];
      const need = (cond, msg) => { if (!cond) report(cm, field, `rules[${i}]: ${msg}`); };
      need(typeof rule.seriesQuery === "string", "seriesQuery (a string) is required");
      need(typeof rule.metricsQuery === "string", "metricsQuery (a string) is required");
      need(rule.resources?.overrides || rule.resources?.template, "resources.overrides or resources.template is required");
      if (typeof rule.metricsQuery === "string") {
        need(rule.metricsQuery.includes("<<.LabelMatchers>>"), "metricsQuery lacks <<.LabelMatchers>> (every pod would get every pod's value)");
        need(rule.metricsQuery.includes("<<.GroupBy>>"), "metricsQuery lacks <<.GroupBy>>");
      }
      if (rule.name?.as) adapterMetrics.add(rule.name.as);
      else if (typeof rule.seriesQuery === "string") {
        const series = /^\s*'?([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(rule.seriesQuery)?.[1];
        if (series) adapterMetrics.add(series);
      }
    });
  }

  // HorizontalPodAutoscalers: the target exists; custom metrics are served;
  // no two differently named HPAs scale the same workload.
  const hpaTargets = new Map();
  for (const hpa of byKind("HorizontalPodAutoscaler")) {
    const ref = hpa.obj.spec?.scaleTargetRef ?? {};
    const target = entries.find((e) => e.obj.kind === ref.kind && e.obj.metadata?.name === ref.name &&
      e.obj.apiVersion === ref.apiVersion && namespaceOf(e) === namespaceOf(hpa));
    if (!target) {
      report(hpa, ["spec", "scaleTargetRef"], `no ${ref.apiVersion} ${ref.kind} "${ref.name}" in the set`);
    } else {
      const key = `${namespaceOf(hpa)}/${ref.kind}/${ref.name}`;
      const other = hpaTargets.get(key);
      if (other && other.obj.metadata?.name !== hpa.obj.metadata?.name) {
        report(hpa, ["spec", "scaleTargetRef"],
               `${other.id} (${relative(other.file)}) scales the same ${ref.kind}: the HPA controller would stop with AmbiguousSelector`);
      }
      hpaTargets.set(key, hpa);
      const containers = target.obj.spec?.template?.spec?.containers ?? [];
      (hpa.obj.spec?.metrics ?? []).forEach((m, i) => {
        if (m.type === "Resource" && m.resource?.target?.type === "Utilization" &&
            !containers.every((c) => c.resources?.requests?.[m.resource.name] !== undefined)) {
          report(hpa, ["spec", "metrics", i], `utilization of ${m.resource.name} needs a ${m.resource.name} request on every container of ${target.id}`);
        }
      });
    }
    (hpa.obj.spec?.metrics ?? []).forEach((m, i) => {
      const name = m.type === "Pods" ? m.pods?.metric?.name : m.type === "Object" ? m.object?.metric?.name : null;
      if (name && !adapterMetrics.has(name)) {
        report(hpa, ["spec", "metrics", i], `custom metric "${name}" is served by no prometheus-adapter rule in the set`);
      }
    });
  }

  // ServiceMonitors select a Service that has the named ports.
  for (const sm of byKind("ServiceMonitor")) {
    const selector = sm.obj.spec?.selector?.matchLabels;
    const services = byKind("Service").filter((s) => matches(selector, s.obj.metadata?.labels));
    if (!services.length) {
      report(sm, ["spec", "selector"], "selects no Service in the set (it matches Service labels, not pod labels)");
      continue;
    }
    (sm.obj.spec?.endpoints ?? []).forEach((ep, i) => {
      if (ep.port && !services.some((s) => (s.obj.spec?.ports ?? []).some((p) => p.name === ep.port))) {
        report(sm, ["spec", "endpoints", i, "port"], `no selected Service has a port named "${ep.port}"`);
      }
    });
  }
}

// ------------------------------------------------------------------ main
const args = process.argv.slice(2);
if (!args.length) {
  console.error("usage: node validate.mjs FILE_OR_DIR...");
  process.exit(2);
}
const files = collectFiles(args);
const entries = [];
for (const file of files) entries.push(...loadDocuments(file));
documentCount = entries.length;
for (const entry of entries) {
  const before = problems.length;
  const known = await checkSchema(entry);
  entry.schemaOk = known && problems.length === before;
}
checkUnknownFields(entries);
checkReferences(entries);

for (const entry of entries) {
  const mine = problems.filter((p) => p.startsWith(`${relative(entry.file)}:`) && p.includes(` ${entry.id}: `));
  console.log(`${mine.length ? "FAIL" : "ok  "} ${relative(entry.file)}:${entry.docLine} ${entry.obj.apiVersion} ${entry.id}`);
}
if (problems.length) {
  console.log("");
  for (const p of problems) console.log(`error: ${p}`);
  console.log(`\n${problems.length} problem(s) in ${documentCount} document(s) of ${files.length} file(s)`);
  process.exit(1);
}
console.log(`\nall ${documentCount} document(s) of ${files.length} file(s) valid (schemas: Kubernetes 1.27.1 and prometheus-operator CRDs; unknown fields; references)`);
