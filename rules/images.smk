# Images stage: the frozen ResNet-18 backbone, the features of the image
# datasets, and the experiments with the last-layer NN (base model nn).
#
#   backbones/{random_init,pretrained}.pt (+ .pt.json)   frozen feature extractors
#   features/{image_set}.h5                 512-d features of an image dataset's images
#   memorization/{dataset}/nn/subsampling_removal.h5|json  Figure 6 (left) and 8 data
#   shapley_ablation/cifar10-{backbone}.h5   Shapley values of CIFAR-10 images
#   figures/fig9_{dataset}_nn, fig8_influence_pairs_{dataset},
#   fig11_sv_transfer, fig12_sv_random_init
#
# Tables II and III reach eval/hymenoptera/nn/{deletion,addition}.h5 through
# rule table, and Figure 6 (rule fig6_memorization of the applications
# stage) draws the memorization panel written here on its left. The data
# rule reads features/{image_set}.h5 as its `features` input.

IMAGES = config["images"]
# Features file stem -> the dataset whose source and split sizes it is made
# from (variants such as hymenoptera-flip10 share their base's features).
IMAGE_SETS = {}
for _name in DATASETS:
    if image_set_of(_name) is not None:
        IMAGE_SETS.setdefault(image_set_of(_name), _name)
# The Shapley ablation's figures and the backbone each one uses.
SHAPLEY_FIGURES = {
    "fig11_sv_transfer": "pretrained",
    "fig12_sv_random_init": "random_init",
}


wildcard_constraints:
    image_set="|".join(IMAGE_SETS) or "(?!)",
    backbone="random_init|pretrained",


def is_cifar10_configured():
    """Return whether images.cifar10 names CIFAR-10's binary folder or allows its download."""
    source = IMAGES["cifar10"]
    return source.get("kind") == "url" or bool(source.get("path"))


def backbone_kind():
    """Return the backbone of the image features: random_init, pretrained or checkpoint."""
    kind = IMAGES["backbone"]
    if kind != "auto":
        return kind
    if IMAGES["checkpoint"]:
        return "checkpoint"
    pretrain = IMAGES["pretrain"]
    if pretrain["data"] == "imagefolder":
        configured = bool(pretrain["imagefolder"])
    else:
        configured = is_cifar10_configured()
    return "pretrained" if configured else "random_init"


def backbone_file(kind):
    """Return the backbone file of `kind` (a user checkpoint, or one this workflow writes)."""
    if kind == "checkpoint":
        if not IMAGES["checkpoint"]:
            raise ValueError(
                "images.backbone is 'checkpoint' but images.checkpoint is not set; "
                "set it to a ResNet-18 state_dict file"
            )
        return IMAGES["checkpoint"]
    return f"{R}/backbones/{kind}.pt"


def transfer_backbone_file():
    """Return the CIFAR-10-pretrained backbone of Figure 11: a checkpoint if given, else pretrained."""
    return backbone_file("checkpoint" if IMAGES["checkpoint"] else "pretrained")


def nn_title(dataset):
    """Return the title of Figure 9, naming the backbone behind the features."""
    return (
        f"{dataset}, NN (last layer of a frozen ResNet-18, backbone {backbone_kind()}): "
        "predicted models against retraining"
    )


def memorization_datasets():
    """Return the datasets that get Figures 6 (left) and 8: the configured one, if it can."""
    options = IMAGES["memorization"]
    name = options["dataset"]
    if not options["enabled"] or name not in DATASETS or image_set_of(name) is None:
        return []
    if "nn" not in models_of(name) or "modelpred" not in config["surrogate"]["methods"]:
        return []
    return [name]


def memorization_file(name, suffix=".h5"):
    """Return the subsampling memorization file of dataset `name` with the nn model."""
    return f"{R}/memorization/{name}/nn/subsampling_removal{suffix}"


# Figure 6 draws these removal panels left of the applications stage's own.
FIGURE6_PANELS[:0] = [memorization_file(name) for name in memorization_datasets()]


def images_targets():
    """Return the final outputs of the images stage that the config enables."""
    targets = []
    if "hymenoptera" in DATASETS and "nn" in models_of("hymenoptera"):
        if len(scenarios_of("hymenoptera")) == 2:
            targets.append(f"{R}/figures/fig9_hymenoptera_nn.png")
    for name in memorization_datasets():
        targets.append(f"{R}/figures/fig8_influence_pairs_{name}.png")
    if IMAGES["shapley_ablation"]["enabled"]:
        targets += [f"{R}/figures/{figure}.png" for figure in SHAPLEY_FIGURES]
    return targets


rule init_backbone:
    output:
        model=f"{R}/backbones/random_init.pt",
        sidecar=f"{R}/backbones/random_init.pt.json",
    log:
        f"{R}/logs/backbones/random_init.log",
    benchmark:
        f"{R}/benchmarks/backbones/random_init.tsv"
    params:
        seed=config["seed"],
        stem=IMAGES["stem"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/init_backbone.py"


# Trains on CUDA when present. A killed job resumes from the checkpoint it
# keeps beside its output (backbones/pretrained.pt.ckpt) after every epoch.
rule pretrain_backbone:
    output:
        model=f"{R}/backbones/pretrained.pt",
        sidecar=f"{R}/backbones/pretrained.pt.json",
    log:
        f"{R}/logs/backbones/pretrained.log",
    benchmark:
        f"{R}/benchmarks/backbones/pretrained.tsv"
    params:
        options=IMAGES["pretrain"],
        cifar10=IMAGES["cifar10"],
        image_size=IMAGES["image_size"],
        stem=IMAGES["stem"],
        seed=config["seed"],
        cache_dir=config["cache_dir"],
    threads: IMAGES["pretrain"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        # 30 epochs of CIFAR-10 take minutes on a data-centre GPU and days on a CPU.
        runtime=720,
    script:
        "../scripts/pretrain_backbone.py"


rule image_features:
    input:
        backbone=lambda wc: backbone_file(backbone_kind()),
    output:
        f"{R}/features/{{image_set}}.h5",
    log:
        f"{R}/logs/features/{{image_set}}.log",
    benchmark:
        f"{R}/benchmarks/features/{{image_set}}.tsv"
    params:
        name="{image_set}",
        dataset=lambda wc: IMAGE_SETS[wc.image_set],
        spec=lambda wc: dataset_spec(IMAGE_SETS[wc.image_set]),
        builder=lambda wc: builder_of(
            IMAGE_SETS[wc.image_set], dataset_spec(IMAGE_SETS[wc.image_set])
        ),
        backbone_kind=backbone_kind(),
        image_size=IMAGES["image_size"],
        extract=IMAGES["extract"],
        seed=config["seed"],
        cache_dir=config["cache_dir"],
    threads: IMAGES["extract"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/image_features.py"


rule figure9:
    input:
        deletion=f"{R}/eval/{{dataset}}/nn/deletion.h5",
        addition=f"{R}/eval/{{dataset}}/nn/addition.h5",
    output:
        multiext(f"{R}/figures/fig9_{{dataset}}_nn", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig9_{{dataset}}_nn.log",
    params:
        title=lambda wc: nn_title(wc.dataset),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/report_figure.py"


rule nn_memorization:
    input:
        data=f"{R}/data/{{dataset}}.h5",
        surrogate=f"{R}/surrogates/{{dataset}}/nn/modelpred.pt",
    output:
        panel=f"{R}/memorization/{{dataset}}/nn/subsampling_removal.h5",
        summary=f"{R}/memorization/{{dataset}}/nn/subsampling_removal.json",
    log:
        f"{R}/logs/memorization/{{dataset}}/nn/subsampling_removal.log",
    benchmark:
        f"{R}/benchmarks/memorization/{{dataset}}/nn/subsampling_removal.tsv"
    params:
        options=IMAGES["memorization"],
        seed=config["seed"],
    # One thread, so that the solver's and ModelPred's times compare like with like.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../scripts/nn_memorization.py"


rule figure8:
    input:
        panel=f"{R}/memorization/{{dataset}}/nn/subsampling_removal.h5",
        features=lambda wc: f"{R}/features/{image_set_of(wc.dataset)}.h5",
    output:
        multiext(f"{R}/figures/fig8_influence_pairs_{{dataset}}", ".png", ".pdf"),
    log:
        f"{R}/logs/figures/fig8_influence_pairs_{{dataset}}.log",
    params:
        figure="influence_pairs",
        rows=IMAGES["memorization"]["pair_rows"],
        per_side=IMAGES["memorization"]["pair_columns"],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/image_figure.py"


rule shapley_ablation:
    input:
        backbone=lambda wc: (
            transfer_backbone_file()
            if wc.backbone == "pretrained"
            else backbone_file("random_init")
        ),
    output:
        f"{R}/shapley_ablation/cifar10-{{backbone}}.h5",
    log:
        f"{R}/logs/shapley_ablation/cifar10-{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/shapley_ablation/cifar10-{{backbone}}.tsv"
    params:
        options=IMAGES["shapley_ablation"],
        cifar10=IMAGES["cifar10"],
        image_size=IMAGES["image_size"],
        extract_batch_size=IMAGES["extract"]["batch_size"],
        seed=config["seed"],
        cache_dir=config["cache_dir"],
    threads: 1
    # Ten-class last layers on every prefix of every permutation: about 800
    # GFLOP per permutation of 200 images, minutes on a GPU, hours on a CPU.
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    script:
        "../scripts/shapley_ablation.py"


for _figure, _backbone in SHAPLEY_FIGURES.items():

    rule:
        name:
            _figure
        input:
            values=f"{R}/shapley_ablation/cifar10-{_backbone}.h5",
        output:
            multiext(f"{R}/figures/{_figure}", ".png", ".pdf"),
        log:
            f"{R}/logs/figures/{_figure}.log",
        params:
            figure="shapley",
            title=(
                "CIFAR-10 images by Shapley value, last layer on a "
                + (
                    "CIFAR-10-pretrained"
                    if _backbone == "pretrained"
                    else "randomly initialised"
                )
                + " ResNet-18"
            ),
            rows=IMAGES["shapley_ablation"]["classes"],
            per_side=IMAGES["shapley_ablation"]["per_side"],
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        script:
            "../scripts/image_figure.py"
