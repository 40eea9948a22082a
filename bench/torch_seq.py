#!/usr/bin/env python3
"""Times one char_lstm or text_transformer training step in PyTorch, as bench/seq.ts does in lth.

    /usr/bin/python3 bench/torch_seq.py [--model char_lstm|text_transformer] [--threads 2]
                                        [--steps 10] [--warmup 3] [--batch 32] [--lr 2e-3]

The networks are lth's (src/models/sequence.ts), in float32 with PyTorch's own layers:
  char_lstm         nn.Embedding(96, 64), nn.LSTM(64, 256, num_layers=2, batch_first=True),
                    nn.Linear(256, 96) at each of 64 positions; mean cross-entropy over positions
  text_transformer  nn.Embedding(10000, 64) + a learned [128, 64] position table, 2 x
                    nn.TransformerEncoderLayer(64, 4, 256, dropout=0, batch_first=True,
                    norm_first=True) with a causal mask, nn.LayerNorm(64), mean over time,
                    nn.Linear(64, 2)
A step: forward a fixed random batch of token ids, the loss, backward, Adam (betas 0.9/0.999,
eps 1e-8), zero_grad(set_to_none=True). The figure is the median of --steps individually
timed steps after --warmup untimed ones.

Prints progress to stderr and one JSON object on stdout.
"""

import torch

from torch_step import parse_step_arguments, step_arguments, time_training_steps

SHAPES = {'char_lstm': (96, 64), 'text_transformer': (10000, 128)}  # vocabulary, sequence length


class CharLstm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(96, 64)
        self.lstm = torch.nn.LSTM(64, 256, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(256, 96)

    def forward(self, ids):
        h, _ = self.lstm(self.embed(ids))
        return self.head(h.reshape(-1, 256))


class TextTransformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10000, 64)
        self.pos = torch.nn.Parameter(0.02 * torch.randn(128, 64))
        self.blocks = torch.nn.ModuleList([torch.nn.TransformerEncoderLayer(64, 4, 256, dropout=0.0, batch_first=True, norm_first=True)
                                           for _ in range(2)])
        self.norm = torch.nn.LayerNorm(64)
        self.fc = torch.nn.Linear(64, 2)
        self.register_buffer('mask', torch.triu(torch.full((128, 128), float('-inf')), diagonal=1))

    def forward(self, ids):
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        for b in self.blocks:
            x = b(x, src_mask=self.mask)
        return self.fc(self.norm(x).mean(dim=1))


def main():
    a = parse_step_arguments(step_arguments(__doc__, sorted(SHAPES), 'char_lstm', 32, 2e-3))
    model = CharLstm() if a.model == 'char_lstm' else TextTransformer()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    vocab, length = SHAPES[a.model]
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, vocab, (a.batch, length), generator=g)
    y = torch.randint(0, vocab if a.model == 'char_lstm' else 2, (a.batch * length if a.model == 'char_lstm' else a.batch,), generator=g)

    time_training_steps(model, opt, x, y, a.model, a.batch, a.warmup, a.steps, a.serve)


if __name__ == '__main__':
    main()
