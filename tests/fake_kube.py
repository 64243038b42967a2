"""A fake Kubernetes API server on 127.0.0.1: just enough of batch/v1 Jobs and v1 Pods
for Metaflow's ``@kubernetes`` to submit a job, watch it, and ``kubernetes kill`` it.

Hand-written (no library serves a fake Kubernetes API without Docker or a
cluster binary): a ThreadingHTTPServer in the test process records every
request. Jobs never run: their pod stays ``Pending`` until killed, which is
what a run looks like while its step is on the cluster. Metaflow's kill first
tries ``exec killall5`` in the pod (a websocket upgrade, refused here with 403),
then patches the job's ``parallelism`` to 0; the patch ends the pod.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeKube:
    """The server; ``jobs`` (name -> job), ``requests`` ((method, path)), ``patches`` (name -> bodies)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.patches: dict[str, list[Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.job_created = threading.Event()
        handler = type("Handler", (_Handler,), {"kube": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKube:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Path) -> Path:
        """A kube-config file whose only cluster is this server."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "fake"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    # -- the API ---------------------------------------------------------------

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or meta.get("generateName", "job-") + uuid.uuid4().hex[:5]
        meta.update(name=name, namespace=namespace, uid=str(uuid.uuid4()))
        body["status"] = {"active": 1}
        template = body.get("spec", {}).get("template", {}).get("metadata", {})
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-pod",
                "namespace": namespace,
                "labels": {**template.get("labels", {}), "job-name": name},
                "annotations": dict(template.get("annotations", {})),
            },
            "status": {"phase": "Pending"},
        }
        with self.lock:
            self.jobs[name] = body
            self.pods[name] = pod
        self.job_created.set()
        return body

    def patch_job(self, name: str, body: Any) -> dict[str, Any] | None:
        with self.lock:
            job = self.jobs.get(name)
            if job is None:
                return None
            self.patches.setdefault(name, []).append(body)
            job["spec"].update(body.get("spec", {}))
            if job["spec"].get("parallelism") == 0:
                job["status"] = {"failed": 1}
                self.pods[name]["status"] = {"phase": "Failed"}
            return job

    def list_pods(self, query: dict[str, list[str]]) -> dict[str, Any]:
        selector = query.get("labelSelector", [""])[0]
        with self.lock:
            pods = list(self.pods.values())
        if selector.startswith("job-name="):
            pods = [p for p in pods if p["metadata"]["labels"].get("job-name") == selector[len("job-name=") :]]
        if "fieldSelector" in query:  # Metaflow asks for phase != Succeeded, != Failed
            pods = [p for p in pods if p["status"]["phase"] not in ("Succeeded", "Failed")]
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}


class _Handler(BaseHTTPRequestHandler):
    kube: FakeKube

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        self.kube.requests.append((method, url.path))
        parts = url.path.strip("/").split("/")
        not_found = {"kind": "Status", "status": "Failure", "message": f"not found: {url.path}", "code": 404}
        # /apis/batch/v1/namespaces/NS/jobs[/NAME]
        if parts[:4] == ["apis", "batch", "v1", "namespaces"] and len(parts) >= 6 and parts[5] == "jobs":
            namespace = parts[4]
            if method == "POST" and len(parts) == 6:
                return self._send(201, self.kube.create_job(namespace, self._body()))
            job = self.kube.jobs.get(parts[6]) if len(parts) == 7 else None
            if job is None:
                return self._send(404, not_found)
            if method == "GET":
                return self._send(200, job)
            if method == "PATCH":
                return self._send(200, self.kube.patch_job(parts[6], self._body()))
            if method == "DELETE":
                self.kube.patch_job(parts[6], {"spec": {"parallelism": 0}})
                return self._send(200, {"kind": "Status", "status": "Success"})
        # /api/v1/namespaces/NS/pods[/NAME/exec]
        if parts[:2] == ["api", "v1"] and len(parts) >= 5 and parts[4] == "pods":
            if len(parts) == 5 and method == "GET":
                return self._send(200, self.kube.list_pods(parse_qs(url.query)))
            if parts[-1] == "exec":  # no websocket here: Metaflow falls back to patching the job
                return self._send(403, {"kind": "Status", "status": "Failure", "message": "exec refused", "code": 403})
        return self._send(404, not_found)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def do_DELETE(self) -> None:
        self._route("DELETE")
