"""Renders deploy/chart with a values file (or defaults) like `helm template`, printing one YAML stream.

    python deploy/render.py deploy/chart [values.yaml] [--release NAME] [--plain]

--plain renders the plain manifests of deploy/k8s: no Secret (kustomize generates it) and
`managed-by: kustomize`.
"""

import sys

import helm_python as hp
import yaml


def main():
    args = sys.argv[1:]
    plain = "--plain" in args
    release = "rel1"
    if "--release" in args:
        release = args[args.index("--release") + 1]
    positional = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or args[i - 1] != "--release")]
    values = {}
    if len(positional) > 1:
        with open(positional[1]) as f:
            values = yaml.safe_load(f) or {}
    rendered = hp.Chart.load(positional[0]).render(values, name=release, namespace="default")
    documents = []
    for _, text in sorted(rendered.items()):
        for document in text.split("\n---\n"):
            document = document.strip()
            if not document or document == "---":
                continue
            if plain:
                if "kind: Secret" in document:
                    continue
                document = document.replace("app.kubernetes.io/managed-by: Helm", "app.kubernetes.io/managed-by: kustomize")
            documents.append(document)
    sys.stdout.write("---\n" + "\n---\n".join(documents) + "\n")


if __name__ == "__main__":
    main()
