"""The Akash deployments in deploy/akash/ and their guide, docs/deploy-on-akash.md: what the lessons rely
on when AKASH_NB_BASE_URL points at them. Each SDL is valid Akash SDL 2.0; its server's port is exposed
globally as port 80; the API sits at /v1 as the guide says; the key comes from an environment variable set
to a placeholder, never a real key and never on the command line; images and models are pinned."""

from __future__ import annotations

import re

import pytest
import yaml
from project import ROOT

DEPLOY = ROOT / "deploy" / "akash"
GUIDE = ROOT / "docs" / "deploy-on-akash.md"
PLACEHOLDER = "REPLACE_WITH_YOUR_KEY"


# What each server needs, in one table: its key variable, the flag that names the served model, the flags
# that would move the API away from /v1, and whether it needs a GPU.
SERVERS = {
    "vllm-gpu.yaml": {
        "key_env": "VLLM_API_KEY",
        "name_flag": "--served-model-name",
        "prefix_flags": ("--root-path",),
        "gpu": True,
    },
    "llamacpp-cpu.yaml": {
        "key_env": "LLAMA_API_KEY",
        "name_flag": "--alias",
        "prefix_flags": ("--api-prefix",),
        "gpu": False,
    },
}


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def the_service(sdl: dict) -> tuple[str, dict]:
    ((name, service),) = sdl["services"].items()
    return name, service


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def env_of(service: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in service.get("env", []))


def test_the_folder_holds_exactly_the_sdls_in_the_table():
    assert sorted(p.name for p in DEPLOY.glob("*.yaml")) == sorted(SERVERS)


@pytest.mark.parametrize("name", SERVERS)
def test_each_sdl_is_akash_sdl_2_with_every_section_wired(name):
    sdl = load(name)
    assert sdl["version"] == "2.0"
    assert set(sdl) == {"version", "services", "profiles", "deployment"}
    service_name, _ = the_service(sdl)
    ((placement, target),) = sdl["deployment"][service_name].items()
    assert target["count"] == 1
    assert target["profile"] in sdl["profiles"]["compute"]
    pricing = sdl["profiles"]["placement"][placement]["pricing"][service_name]
    assert pricing["denom"] == "uakt" and isinstance(pricing["amount"], int) and pricing["amount"] > 0


@pytest.mark.parametrize("name", SERVERS)
def test_the_servers_port_is_exposed_globally_as_port_80(name):
    _, service = the_service(load(name))
    ((exposed),) = service["expose"]
    assert exposed["as"] == 80
    assert exposed["to"] == [{"global": True}]
    assert flag(service["args"], "--port") == str(exposed["port"]), "the server listens on the exposed port"
    assert flag(service["args"], "--host") == "0.0.0.0", "reachable from the provider's ingress"


@pytest.mark.parametrize("name", SERVERS)
def test_the_api_stays_at_v1_as_the_guide_says(name):
    _, service = the_service(load(name))
    for moved in SERVERS[name]["prefix_flags"]:
        assert moved not in service["args"], f"{moved} would move the API away from /v1"
    assert "AKASH_NB_BASE_URL=https://<provider-host>/v1" in GUIDE.read_text()


@pytest.mark.parametrize("name", SERVERS)
def test_the_key_comes_from_an_environment_variable_set_to_a_placeholder(name):
    text = (DEPLOY / name).read_text()
    _, service = the_service(load(name))
    assert env_of(service)[SERVERS[name]["key_env"]] == PLACEHOLDER
    assert "--api-key" not in service["args"], "a key on the command line is visible to every process"
    assert not re.search(r"sk-[A-Za-z0-9_-]{20,}|akml-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}", text)


@pytest.mark.parametrize("name", SERVERS)
def test_the_image_is_pinned(name):
    text = (DEPLOY / name).read_text()
    _, service = the_service(load(name))
    image = service["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{image} has no tag"
    assert re.fullmatch(r"v\d+\.\d+\.\d+|server-b\d+", tag), f"{image}: not a release or build tag"
    assert "latest" not in text.lower()


def test_the_gpu_deployment_asks_for_one_nvidia_gpu_of_named_models():
    sdl = load("vllm-gpu.yaml")
    name, _ = the_service(sdl)
    gpu = sdl["profiles"]["compute"][name]["resources"]["gpu"]
    assert gpu["units"] == 1
    models = [entry["model"] for entry in gpu["attributes"]["vendor"]["nvidia"]]
    assert models and all(isinstance(m, str) for m in models)


def test_the_cpu_deployment_needs_no_gpu_and_uses_the_cpus_it_asks_for():
    sdl = load("llamacpp-cpu.yaml")
    name, service = the_service(sdl)
    resources = sdl["profiles"]["compute"][name]["resources"]
    assert "gpu" not in resources
    assert flag(service["args"], "--threads") == str(resources["cpu"]["units"])


def test_the_vllm_model_is_pinned_to_a_commit():
    _, service = the_service(load("vllm-gpu.yaml"))
    args = service["args"]
    assert service["command"] == ["vllm", "serve"]
    assert args[0] == "Qwen/Qwen2.5-7B-Instruct"
    assert re.fullmatch(r"[0-9a-f]{40}", flag(args, "--revision"))
    assert flag(args, "--tokenizer-revision") == flag(args, "--revision")


def test_the_llama_cpp_model_is_an_exact_gguf_file():
    _, service = the_service(load("llamacpp-cpu.yaml"))
    args = service["args"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", flag(args, "--hf-repo"))
    assert flag(args, "--hf-file").endswith(".gguf")
    assert int(flag(args, "--parallel")) >= 2, "more than one student at a time"


@pytest.mark.parametrize("name", SERVERS)
def test_the_guide_names_the_model_each_server_reports(name):
    _, service = the_service(load(name))
    served = flag(service["args"], SERVERS[name]["name_flag"])
    guide = GUIDE.read_text()
    assert f"`{served}`" in guide, "the guide says which model /v1/models lists"
    assert f"deploy/akash/{name}" in guide


def test_the_guide_goes_from_the_sdl_to_make_lab_and_marks_its_estimates():
    guide = GUIDE.read_text()
    assert "AKASH_NB_BASE_URL=https://<provider-host>/v1 AKASH_NB_API_KEY=" in guide
    assert "make lab" in guide
    assert f"s/{PLACEHOLDER}/" in guide, "the guide's sed line replaces the SDLs' placeholder"
    costs = guide[guide.index("## 5.") : guide.index("## 6.")]
    assert "estimate" in costs.lower() and "not a measurement" in costs
