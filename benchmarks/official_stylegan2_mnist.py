"""StyleGAN2 by NVIDIA's own code (NVlabs/stylegan2-ada-pytorch) at stylegan2_mnist's settings, on CPU.

The reference run behind docs/results.md's "the official code collapses the same way": the official
Generator, Discriminator and StyleGAN2Loss, imported from a checkout (nothing of it is copied here),
driven by a loop that follows ADA's training_loop.py (phases Gmain, Greg every 4, Dmain, Dreg every
16, one Adam per network with the lazy correction, G_ema by half-life with ramp-up; no augmentation)
on MNIST's 10,000 test digits resized to 32x32. Logs diversity (per-pixel std across 256 fixed z for
G and G_ema), saves 8x8 grids of G_ema, and probes D at the end; results.json in --out.

Usage (PyTorch needed; one thread):
  git clone https://github.com/NVlabs/stylegan2-ada-pytorch /tmp/sg2ada
  taskset -c 0 python benchmarks/official_stylegan2_mnist.py --official /tmp/sg2ada --out /tmp/official_run \
      [--channel-base 256] [--channel-max 16] [--steps 1000] [--lr 0.0025] [--pl-weight 2] [--style-mixing 0.9]
      [--r1-gamma 0.05] [--seed 0]
"""
import argparse, copy, gzip, json, os, sys, time
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--official', required=True, help='a checkout of NVlabs/stylegan2-ada-pytorch')
p.add_argument('--channel-base', type=int, default=256)
p.add_argument('--channel-max', type=int, default=16)
p.add_argument('--steps', type=int, default=1000)
p.add_argument('--lr', type=float, default=0.0025)
p.add_argument('--pl-weight', type=float, default=2.0)
p.add_argument('--style-mixing', type=float, default=0.9)
p.add_argument('--r1-gamma', type=float, default=0.05)
p.add_argument('--batch', type=int, default=32)
p.add_argument('--z-dim', type=int, default=64)
p.add_argument('--w-dim', type=int, default=64)
p.add_argument('--map-layers', type=int, default=2)
p.add_argument('--ema-kimg', type=float, default=2.5)
p.add_argument('--ema-rampup', type=float, default=0.05)
p.add_argument('--eval-every', type=int, default=250)
p.add_argument('--log-every', type=int, default=50)
p.add_argument('--seed', type=int, default=0)
p.add_argument('--data', default=os.path.join(os.environ.get('JAXGAN_MNIST_DIR') or os.path.join(
    HERE, '..', '..', 'shared', 'data', 'mnist'), 't10k-images-idx3-ubyte.gz'))
p.add_argument('--out', required=True)
args = p.parse_args()
sys.path.insert(0, args.official)

import torch  # noqa: E402
torch.set_num_threads(1)
torch.set_num_interop_threads(1)
from PIL import Image  # noqa: E402
from torch_utils import training_stats, misc  # noqa: E402
from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix  # noqa: E402
from training.networks import Generator, Discriminator  # noqa: E402
from training.loss import StyleGAN2Loss  # noqa: E402

# On CPU the custom ops fall back to reference implementations; the gradfix ops are
# version-gated to torch 1.7-1.9 and CUDA only, so keep them off explicitly.
conv2d_gradfix.enabled = False
grid_sample_gradfix.enabled = False

os.makedirs(os.path.join(args.out, 'samples'), exist_ok=True)
device = torch.device('cpu')
np.random.seed(args.seed); torch.manual_seed(args.seed)

# ---------------- data ----------------
with gzip.open(args.data, 'rb') as f:
    raw = f.read()
n, h, w = (int.from_bytes(raw[i:i + 4], 'big') for i in (4, 8, 12))
imgs = torch.from_numpy(np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, h, w).astype(np.float32) / 255.0)
imgs = torch.nn.functional.interpolate(imgs, size=(32, 32), mode='bilinear', align_corners=False, antialias=False)
data = imgs * 2 - 1  # [-1, 1], [N,1,32,32]
print(f'data {tuple(data.shape)} range [{data.min():.2f},{data.max():.2f}]', flush=True)
B = args.batch
def batches():
    while True:
        perm = torch.randperm(data.shape[0])
        for i in range(0, data.shape[0] - B + 1, B):
            yield data[perm[i:i + B]]
it = batches()

# ---------------- networks ----------------
common = dict(c_dim=0, img_resolution=32, img_channels=1)
G = Generator(z_dim=args.z_dim, w_dim=args.w_dim, mapping_kwargs={'num_layers': args.map_layers},
              synthesis_kwargs={'channel_base': args.channel_base, 'channel_max': args.channel_max,
                                'num_fp16_res': 0, 'conv_clamp': None}, **common).train().requires_grad_(False)
D = Discriminator(architecture='resnet', channel_base=args.channel_base, channel_max=args.channel_max,
                  num_fp16_res=0, conv_clamp=None, epilogue_kwargs={'mbstd_group_size': 4}, **common).train().requires_grad_(False)
G_ema = copy.deepcopy(G).eval()
print('G channels:', {r: getattr(G.synthesis, f'b{r}').conv1.weight.shape[0] for r in G.synthesis.block_resolutions})
print('G params', sum(p.numel() for p in G.parameters()), 'D params', sum(p.numel() for p in D.parameters()), flush=True)

loss = StyleGAN2Loss(device=device, G_mapping=G.mapping, G_synthesis=G.synthesis, D=D, augment_pipe=None,
                     style_mixing_prob=args.style_mixing, r1_gamma=args.r1_gamma, pl_batch_shrink=2,
                     pl_decay=0.01, pl_weight=args.pl_weight)
phases = []
for name, module, reg_interval in [('G', G, 4), ('D', D, 16)]:
    mb_ratio = reg_interval / (reg_interval + 1)
    opt = torch.optim.Adam(module.parameters(), lr=args.lr * mb_ratio, betas=[b ** mb_ratio for b in (0, 0.99)], eps=1e-8)
    phases += [dict(name=name + 'main', module=module, opt=opt, interval=1)]
    phases += [dict(name=name + 'reg', module=module, opt=opt, interval=reg_interval)]

# ---------------- eval helpers ----------------
torch.manual_seed(123); grid_z = torch.randn(64, args.z_dim)
div_z = torch.randn(256, args.z_dim, generator=torch.Generator().manual_seed(456))
torch.manual_seed(args.seed)
real_ref = data[torch.randperm(data.shape[0], generator=torch.Generator().manual_seed(789))[:256]]
print(f'real pixel std across 256 samples: {real_ref.std(0).mean():.4f}', flush=True)
c0 = torch.zeros([1, 0])

def to_u8(x):
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)

def save_grid(net, path):
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        x = net(grid_z, c0.expand(64, 0), truncation_psi=1, noise_mode='random')[:, 0]
    u = to_u8(x).numpy()
    S = 32; P = 2; W = 8 * S + 7 * P
    canvas = np.zeros((W, W), np.uint8)
    for k in range(64):
        r, c = divmod(k, 8)
        canvas[r * (S + P):r * (S + P) + S, c * (S + P):c * (S + P) + S] = u[k]
    Image.fromarray(canvas, 'L').save(path)

def diversity(net):
    was = net.training; net.eval()  # eval: no w_avg update (psi=1 so output is unaffected)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        ws = net.mapping(div_z, c0.expand(256, 0))
        x = net.synthesis(ws, noise_mode='random')
        xc = net.synthesis(ws, noise_mode='const')
    net.train(was)
    return dict(pix_std=x.std(0).mean().item(), pix_std_const=xc.std(0).mean().item(),
                w_std=ws[:, 0].std(0).mean().item())

history = []
def evaluate(step):
    save_grid(G_ema, os.path.join(args.out, 'samples', f'{step:08d}.png'))
    dg, de = diversity(G), diversity(G_ema)
    rec = dict(step=step, G=dg, G_ema=de); history.append(rec)
    print(f'[eval {step:5d}] G: pix_std {dg["pix_std"]:.4f} (const {dg["pix_std_const"]:.4f}) w_std {dg["w_std"]:.4f} | '
          f'G_ema: pix_std {de["pix_std"]:.4f} (const {de["pix_std_const"]:.4f}) w_std {de["w_std"]:.4f}', flush=True)

# ---------------- training ----------------
stats = training_stats.Collector(regex='.*')
cur_nimg = 0
evaluate(0)
t0 = time.time(); t_tick = t0
for batch_idx in range(args.steps):
    real = next(it)
    all_gen_z = torch.randn([len(phases) * B, args.z_dim]).split(B)
    for ph, gen_z in zip(phases, all_gen_z):
        if batch_idx % ph['interval'] != 0:
            continue
        ph['opt'].zero_grad(set_to_none=True)
        ph['module'].requires_grad_(True)
        loss.accumulate_gradients(phase=ph['name'], real_img=real, real_c=c0.expand(B, 0), gen_z=gen_z,
                                  gen_c=c0.expand(B, 0), sync=True, gain=ph['interval'])
        ph['module'].requires_grad_(False)
        for param in ph['module'].parameters():
            if param.grad is not None:
                misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
        ph['opt'].step()
    # G_ema
    with torch.no_grad():
        ema_nimg = args.ema_kimg * 1000
        if args.ema_rampup is not None:
            ema_nimg = min(ema_nimg, cur_nimg * args.ema_rampup)
        ema_beta = 0.5 ** (B / max(ema_nimg, 1e-8))
        for p_ema, p_ in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p_.lerp(p_ema, ema_beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)
    cur_nimg += B
    step = batch_idx + 1
    if step % args.log_every == 0:
        stats.update()
        now = time.time()
        g = lambda k: stats.mean(k)
        print(f'step {step:5d} kimg {cur_nimg/1000:6.2f} | G {g("Loss/G/loss"):.3f} D {g("Loss/D/loss"):.3f} '
              f'real {g("Loss/scores/real"):+.3f} fake {g("Loss/scores/fake"):+.3f} '
              f'pl {g("Loss/pl_penalty"):.4f} r1 {g("Loss/r1_penalty"):.4f} pl_mean {loss.pl_mean.item():.4f} | '
              f'{args.log_every/(now-t_tick):.2f} steps/s, total {now-t0:.0f}s', flush=True)
        t_tick = now
    if step % args.eval_every == 0 or step == args.steps:
        te = time.time(); evaluate(step); t_tick += time.time() - te

# ---------------- D probe ----------------
with torch.no_grad(), torch.random.fork_rng(devices=[]):
    torch.manual_seed(3)
    r = data[torch.randperm(data.shape[0])[:32]]
    fake = G(torch.randn(32, args.z_dim), c0.expand(32, 0))
    cz = c0.expand(32, 0)
    probe = dict(real=D(r, cz).mean().item(), real_copies=D(r[:1].expand(32, -1, -1, -1).contiguous(), cz).mean().item(),
                 fake=D(fake, cz).mean().item(), fake_copies=D(fake[:1].expand(32, -1, -1, -1).contiguous(), cz).mean().item())
print('D probe:', {k: round(v, 3) for k, v in probe.items()}, flush=True)
train_time = time.time() - t0
print(f'train wall {train_time:.0f}s, {args.steps/train_time:.2f} steps/s (incl. evals)')
json.dump(dict(args=vars(args), history=history, probe=probe, real_pix_std=real_ref.std(0).mean().item(),
               train_wall_s=train_time), open(os.path.join(args.out, 'results.json'), 'w'), indent=1)
