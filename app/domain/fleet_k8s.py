"""The ``kubernetes`` fleet launcher: one Kubernetes Job of workers per launch.

The manifest is built with the official client's models and serialized by
its ``ApiClient().sanitize_for_serialization`` (what it sends to the API
server), so a dry run shows exactly what a launch would create:

- a Secret holding the worker token (a dry run shows a placeholder);
- a Job with ``parallelism`` = workers and no ``completions`` (the
  work-queue pattern: each pod exits 0 when the master says "done", so the
  Job completes when the work does), whose pods run ``jobmaster worker run
  --job <id>`` with no command of their own (they run the job's
  ``command``), the token from the Secret, and a preStop hook that makes the
  worker report what it finished and release the rest of its leases before
  the pod goes.

Configuration: in-cluster (a service account) when running in a pod, else
the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``). ``examples/k8s/
fleet.yaml`` is this module's output: ``python -m app.domain.fleet_k8s``.
"""
import os
import socket

from kubernetes import client as k8s

from ..errors import BadRequest, NotConfigured

PID_FILE = "/tmp/jobmaster-worker.pid"
GRACE_SECONDS = 60
SECRET_KEY = "token"
_SA_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def names(job_id, ref):
    base = "jobmaster-%s-%s" % (job_id[:40], ref)
    return base, base + "-token"


def _labels(job_id, ref):
    return {"app.kubernetes.io/name": "jobmaster-worker", "app.kubernetes.io/part-of": "jobmaster",
            "jobmaster/job": job_id[:63], "jobmaster/launch": ref}


def manifest(job_id, ref, workers, image, url, token, concurrency=1):
    """[Secret, Job] as client models."""
    job_name, secret_name = names(job_id, ref)
    labels = _labels(job_id, ref)
    meta = k8s.V1ObjectMeta(name=secret_name, labels=labels)
    secret = k8s.V1Secret(api_version="v1", kind="Secret", metadata=meta, type="Opaque",
                          string_data={SECRET_KEY: token})
    env = [
        k8s.V1EnvVar(name="JOBMASTER_URL", value=url),
        k8s.V1EnvVar(name="JOBMASTER_TOKEN", value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=secret_name, key=SECRET_KEY))),
        k8s.V1EnvVar(name="POD_NAME", value_from=k8s.V1EnvVarSource(
            field_ref=k8s.V1ObjectFieldSelector(field_path="metadata.name"))),
    ]
    container = k8s.V1Container(
        name="worker", image=image, env=env,
        # No command after the options: the worker runs the job's own command.
        # $(POD_NAME) is expanded by Kubernetes: the master shows pod names.
        command=["jobmaster", "worker", "run", "--job", job_id, "--name", "$(POD_NAME)",
                 "--concurrency", str(concurrency), "--on-term", "finish",
                 "--pid-file", PID_FILE],
        lifecycle=k8s.V1Lifecycle(pre_stop=k8s.V1LifecycleHandler(_exec=k8s.V1ExecAction(
            # SIGTERM the worker and wait until it has reported what it
            # finished and released the rest of its leases.
            command=["jobmaster", "worker", "stop", "--pid-file", PID_FILE,
                     "--timeout", str(GRACE_SECONDS - 5)]))))
    pod = k8s.V1PodTemplateSpec(
        metadata=k8s.V1ObjectMeta(labels=labels),
        spec=k8s.V1PodSpec(restart_policy="OnFailure", containers=[container],
                           termination_grace_period_seconds=GRACE_SECONDS))
    job = k8s.V1Job(
        api_version="batch/v1", kind="Job",
        metadata=k8s.V1ObjectMeta(name=job_name, labels=labels),
        spec=k8s.V1JobSpec(parallelism=workers, backoff_limit=max(6, workers),
                           ttl_seconds_after_finished=7 * 24 * 3600, template=pod))
    return [secret, job]


def serialize(objects):
    return k8s.ApiClient().sanitize_for_serialization(objects)


def plan(job_id, ref, opts, token_placeholder, _job):
    image = opts["image"] or "<JOBMASTER_WORKER_IMAGE>"
    return {"namespace": opts["namespace"] or None,
            "objects": serialize(manifest(job_id, ref, opts["workers"], image, opts["url"],
                                          token_placeholder, opts["concurrency"]))}


def _load():
    from kubernetes import config

    try:
        config.load_incluster_config()
        with open(_SA_NAMESPACE) as fh:
            return fh.read().strip()
    except (config.ConfigException, OSError):
        pass
    # $KUBECONFIG read now: the client reads it once, when it is imported.
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        config.load_kube_config(config_file=path)
        _contexts, active = config.list_kube_config_contexts(config_file=path)
    except (config.ConfigException, OSError, TypeError) as err:
        raise NotConfigured("JOBMASTER_LAUNCHER=kubernetes but no cluster is reachable: not in "
                            "a pod and no kubeconfig (%s)" % err) from None
    return (active or {}).get("context", {}).get("namespace") or "default"


def _api_error(err):
    return NotConfigured("the Kubernetes API refused the fleet: %s %s"
                         % (getattr(err, "status", ""), getattr(err, "reason", err)))


def launch(config, job_id, ref, opts, token, _job):
    if not opts["image"]:
        raise BadRequest("body.image: no worker image (set JOBMASTER_WORKER_IMAGE or send one)")
    if token is None:
        token = ""  # auth is open: the workers need none
    detected = _load()
    namespace = opts["namespace"] or detected
    secret, job = manifest(job_id, ref, opts["workers"], opts["image"], opts["url"], token,
                           opts["concurrency"])
    core, batch = k8s.CoreV1Api(), k8s.BatchV1Api()
    try:
        core.create_namespaced_secret(namespace, secret)
        try:
            batch.create_namespaced_job(namespace, job)
        except k8s.ApiException:
            core.delete_namespaced_secret(secret.metadata.name, namespace)
            raise
    except k8s.ApiException as err:
        raise _api_error(err) from None
    return {"host": socket.gethostname(), "namespace": namespace, "job_name": job.metadata.name,
            "secret_name": secret.metadata.name, "names": [job.metadata.name]}


def reachable(_record):
    return True


def describe(record):
    out = {"launcher": "kubernetes", "ref": record["ref"], "workers": record["workers"],
           "launched_at": record["launched_at"], "namespace": record["namespace"],
           "job_name": record["job_name"], "running": None}
    try:
        _load()
        status = k8s.BatchV1Api().read_namespaced_job_status(record["job_name"],
                                                             record["namespace"]).status
        out.update(running=status.active or 0, succeeded=status.succeeded or 0,
                   failed=status.failed or 0)
    except (k8s.ApiException, NotConfigured) as err:
        out["error"] = str(getattr(err, "reason", None) or err)
    return out


def stop(record):
    _load()
    body = k8s.V1DeleteOptions(propagation_policy="Background")  # pods get their preStop
    try:
        k8s.BatchV1Api().delete_namespaced_job(record["job_name"], record["namespace"], body=body)
        k8s.CoreV1Api().delete_namespaced_secret(record["secret_name"], record["namespace"])
    except k8s.ApiException as err:
        if err.status != 404:
            raise _api_error(err) from None
    return record["workers"]


def main():
    """Print the example manifest of examples/k8s/fleet.yaml."""
    import yaml

    objects = serialize(manifest("REPLACE_WITH_JOB_ID", "weekly", 1000,
                                 "registry.example.com/gamecore-worker:latest",
                                 "http://jobmaster", "REPLACE_WITH_WORKER_TOKEN", 2))
    print("# Generated by `python -m app.domain.fleet_k8s` from the manifest that\n"
          "# POST /api/v1/jobs/<id>/fleet sends (JOBMASTER_LAUNCHER=kubernetes); a dry\n"
          "# run (GET .../fleet?dry_run=1&workers=n&launcher=kubernetes) shows yours.\n"
          "---\n" + "---\n".join(yaml.safe_dump(o, sort_keys=False) for o in objects), end="")


if __name__ == "__main__":
    main()
