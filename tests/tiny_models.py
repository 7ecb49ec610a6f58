"""Small models the tests build and save themselves: a 2-layer GPT-2 checkpoint folder (with a
word-level tokenizer trained on the built-in sentences) and a user module file with a factory."""

from pathlib import Path

import torch

USER_MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def build():
    return Net()


def broken():
    raise RuntimeError("this factory cannot build anything")


def not_a_module():
    return 42
'''


def save_tiny_gpt2(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer GPT-2 (hidden 16, 2 heads, 64 positions) saved with ``save_pretrained``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from layers.calibration import builtin_sentences
    from layers.models.huggingface import transformers_offline

    tf = transformers_offline()
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(builtin_sentences(),
                            trainers.WordLevelTrainer(special_tokens=["<unk>", "<eos>"]))
    fast = tf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>",
                                      eos_token="<eos>")
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    torch.manual_seed(seed)
    cfg = tf.GPT2Config(vocab_size=tok.get_vocab_size(), n_positions=64, n_embd=16, n_layer=2,
                        n_head=2)
    tf.GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    return folder


def write_user_module(folder: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """``(nets.py, weights.pt)``: the module file above and a trained-looking state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "nets.py"
    src.write_text(USER_MODULE)
    ns: dict = {}
    exec(compile(USER_MODULE, str(src), "exec"), ns)  # noqa: S102 - the test's own code
    torch.manual_seed(seed)
    net = ns["build"]()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    weights = folder / "weights.pt"
    torch.save(net.state_dict(), weights)
    return src, weights
