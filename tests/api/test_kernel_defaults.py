"""The kernel inputs of ``POST /v1/memory/training`` that follow the device and the model's family:
dropout masks and recurrent layers on the CUDA or the CPU convention, and Gemma's and OLMo 2's
fp32-weight norms."""

from __future__ import annotations

from service.core.activations import ActivationOptions, layer_activation_bytes
from service.core.kernels import DeviceConvention, Kernels
from tests.api.test_calculators import ok, problem
from tests.core.helpers import preset

GEMMA = {"preset": "gemma-7b"}


def per_layer(client, body: dict) -> int:
    return ok(client, "/v1/memory/training", {"seq_len": 2048, "flash_attention": True} | body)["activations"]["per_layer_bytes"]


def test_gemma_norms_multiply_their_weight_in_fp32_by_default(client) -> None:
    # GemmaRMSNorm (transformers): output * (1.0 + self.weight.float()), cast back after: each norm keeps
    # its fp32 input and an fp32 normalised tensor, 8 bytes an element, not 4 + 2
    default = per_layer(client, {"model": GEMMA})
    assert default == per_layer(client, {"model": GEMMA, "fp32_norm_weight": True})
    llama_style = per_layer(client, {"model": GEMMA, "fp32_norm_weight": False})  # the explicit input overrides
    assert default - llama_style == 2 * 2 * 2048 * 3072  # two norms a layer of h = 3072, 2 bytes more an element
    llama = {"preset": "llama-2-7b"}
    assert per_layer(client, {"model": llama}) == per_layer(client, {"model": llama, "fp32_norm_weight": False})


def test_megatron_s_fused_norms_keep_no_fp32_copy_whatever_the_family(client) -> None:
    # Megatron-Core runs Gemma with Transformer Engine's fused RMSNorm (zero-centred gamma): it keeps its 16-bit
    # input and an fp32 scalar a token, as for any family; the planner counts the same
    megatron = {"model": GEMMA, "framework": "megatron"}
    assert per_layer(client, megatron) == per_layer(client, megatron | {"fp32_norm_weight": False})
    assert per_layer(client, megatron) < per_layer(client, megatron | {"fp32_norm_weight": True})  # given: honoured
    small = {"preset": "gemma-2b"}  # the same layout through the planner, on one GPU
    body = {"model": small, "framework": "megatron", "seq_len": 2048, "flash_attention": True, "micro_batch_size": 1}
    memory = ok(client, "/v1/memory/training", body)["per_gpu"]["total_bytes"]
    planned = ok(client, "/v1/plan", {"model": small, "gpu": "h100-sxm", "n_gpus": 1, "seq_len": 2048, "global_batch_size": 1,
                                      "fixed": {"tp": 1, "pp": 1, "micro_batch_size": 1, "recompute": "none", "zero_stage": 0},
                                      "top_k": 1})["plans"]  # fmt: skip
    assert planned[0]["per_gpu_total_bytes"] == memory


def test_fp8_recipe_needs_fp8_precision(client) -> None:
    data = problem(client, "/v1/memory/training", {"model": GEMMA, "seq_len": 1024, "fp8_recipe": "blockwise"})
    assert "fp8_recipe applies to precision fp8 only" in str(data)


def test_olmo2_config_norms_follow_the_model_type(client) -> None:
    # Olmo2RMSNorm: (self.weight * hidden_states).to(input_dtype) on fp32 hidden_states
    config = {"model_type": "olmo2", "hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8,
              "num_key_value_heads": 8, "intermediate_size": 1376, "vocab_size": 1000}  # fmt: skip
    default = per_layer(client, {"model": {"hf_config": config}})
    assert default == per_layer(client, {"model": {"hf_config": config}, "fp32_norm_weight": True})
    assert default > per_layer(client, {"model": {"hf_config": config}, "fp32_norm_weight": False})
    llama = per_layer(client, {"model": {"hf_config": config | {"model_type": "llama"}}})
    assert llama == per_layer(client, {"model": {"hf_config": config | {"model_type": "llama"}}, "fp32_norm_weight": False})


def test_dropout_masks_follow_the_device_convention(client) -> None:
    # GPT-2 with dropout, eager attention: CUDA's native_dropout keeps 1 byte an element (the default);
    # the CPU a noise tensor of the dropped tensor's dtype: residual masks and score masks 1 byte more
    body = {"model": {"preset": "gpt2"}, "seq_len": 1024, "dropout": True, "attention_implementation": "eager"}
    cuda = ok(client, "/v1/memory/training", body)
    cpu = ok(client, "/v1/memory/training", body | {"device_convention": "cpu"})
    assert cuda == ok(client, "/v1/memory/training", body | {"device_convention": "cuda"})
    sbh, scores = 1024 * 768, 12 * 1024 * 1024
    assert cpu["activations"]["per_layer_bytes"] - cuda["activations"]["per_layer_bytes"] == 2 * sbh + scores
    assert cuda["assumptions"]["device_convention"].startswith("cuda: dropout keeps a 1-byte mask")
    assert cpu["assumptions"]["device_convention"].startswith("cpu:")
    plain = {k: v for k, v in body.items() if k != "dropout"}
    without = ok(client, "/v1/memory/training", plain)
    assert "device_convention" not in without["assumptions"]  # nothing to state without dropout
    assert without == ok(client, "/v1/memory/training", plain | {"device_convention": "cpu"})  # nor to change


def test_lora_dropout_mask_follows_the_device_convention(client) -> None:
    body = {"model": {"preset": "llama-2-7b"}, "seq_len": 1024, "flash_attention": True,
            "finetune": {"method": "lora", "r": 16, "dropout": 0.1, "target_modules": ["q", "v"]}}  # fmt: skip
    cuda = ok(client, "/v1/memory/training", body)["finetune"]["adapter_activations_bytes"]
    cpu = ok(client, "/v1/memory/training", body | {"device_convention": "cpu"})["finetune"]["adapter_activations_bytes"]
    assert cpu - cuda == 32 * 2 * 1024 * 4096  # q and v's dropped inputs' masks, 1 byte more an element in 32 layers


def test_bad_device_convention_is_a_422(client) -> None:
    r = client.post("/v1/memory/training", json={"model": GEMMA, "device_convention": "tpu"})
    assert r.status_code == 422 and "device_convention" in r.text


def test_recurrent_layers_follow_the_device_convention(client) -> None:
    # Mamba-2 on the CPU runs transformers' reference mamba2_chunk_scan, which keeps fp32 C x C blocks per
    # chunk and head (validation/measurements/recurrent_activations.json); on CUDA the fused kernel's tensors
    body = {"model": {"preset": "mamba2-2.7b"}, "seq_len": 4096, "micro_batch_size": 1}
    cuda = ok(client, "/v1/memory/training", body)
    cpu = ok(client, "/v1/memory/training", body | {"device_convention": "cpu"})
    arch = preset("mamba2-2.7b")
    for answer, device in ((cuda, DeviceConvention.CUDA), (cpu, DeviceConvention.CPU)):
        opts = ActivationOptions(seq_len=4096, micro_batch_size=1, kernels=Kernels(device=device))
        assert answer["activations"]["per_layer_bytes"] == layer_activation_bytes(arch, opts).total_bytes
        assert "Mamba-2" in answer["assumptions"]["device_convention"]  # stated without dropout
    assert cpu["activations"]["per_layer_bytes"] > 4 * cuda["activations"]["per_layer_bytes"]
