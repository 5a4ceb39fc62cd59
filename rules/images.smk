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


# Figure 6 draws these removal panels left of the applications stage's own.
FIGURE6_PANELS[:0] = [memorization_file(name) for name in memorization_datasets()]


rule init_backbone:
    output:
        model=f"{R}/backbones/random_init.pt",
        sidecar=f"{R}/backbones/random_init.pt.json",
    log:
        f"{R}/logs/backbones/random_init.log",
    benchmark:
        f"{R}/benchmarks/backbones/random_init.tsv"
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        seed=config["seed"],
        stem=IMAGES["stem"],
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
    conda:
        "../envs/modelpred.yaml"
    threads: IMAGES["pretrain"]["threads"]
    resources:
        gpu=1,
        mem_mb=8000,
        # 30 epochs of CIFAR-10 take minutes on a data-centre GPU and days on a CPU.
        runtime=720,
    params:
        options=IMAGES["pretrain"],
        cifar10=IMAGES["cifar10"],
        image_size=IMAGES["image_size"],
        stem=IMAGES["stem"],
        seed=config["seed"],
        cache_dir=config["cache_dir"],
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
    conda:
        "../envs/modelpred.yaml"
    threads: IMAGES["extract"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
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
    script:
        "../scripts/image_features.py"


rule figure9:
    input:
        deletion=f"{R}/eval/{{dataset}}/nn/deletion.h5",
        addition=f"{R}/eval/{{dataset}}/nn/addition.h5",
    output:
        report(
            f"{R}/figures/fig9_{{dataset}}_nn.png",
            caption="../report/figures/fig9_hymenoptera_nn.rst",
            category="4 Additional results (Appendix C)",
            subcategory="4.2 Transfer learning with the NN",
        ),
        f"{R}/figures/fig9_{{dataset}}_nn.pdf",
    log:
        f"{R}/logs/figures/fig9_{{dataset}}_nn.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        title=lambda wc: nn_title(wc.dataset),
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
    conda:
        "../envs/modelpred.yaml"
    # One thread, so that the solver's and ModelPred's times compare like with like.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        options=IMAGES["memorization"],
        seed=config["seed"],
    script:
        "../scripts/nn_memorization.py"


rule figure8:
    input:
        panel=f"{R}/memorization/{{dataset}}/nn/subsampling_removal.h5",
        features=lambda wc: f"{R}/features/{image_set_of(wc.dataset)}.h5",
    output:
        report(
            f"{R}/figures/fig8_influence_pairs_{{dataset}}.png",
            caption="../report/figures/fig8_influence_pairs_hymenoptera.rst",
            category="3 Applications (IV-C)",
            subcategory="3.4 Memorization and influence",
        ),
        f"{R}/figures/fig8_influence_pairs_{{dataset}}.pdf",
    log:
        f"{R}/logs/figures/fig8_influence_pairs_{{dataset}}.log",
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        figure="influence_pairs",
        rows=IMAGES["memorization"]["pair_rows"],
        per_side=IMAGES["memorization"]["pair_columns"],
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
    conda:
        "../envs/modelpred.yaml"
    threads: 1
    # Ten-class last layers on every prefix of every permutation: about 800
    # GFLOP per permutation of 200 images, minutes on a GPU, hours on a CPU.
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=600,
    params:
        options=IMAGES["shapley_ablation"],
        cifar10=IMAGES["cifar10"],
        image_size=IMAGES["image_size"],
        extract_batch_size=IMAGES["extract"]["batch_size"],
        seed=config["seed"],
        cache_dir=config["cache_dir"],
    script:
        "../scripts/shapley_ablation.py"


for _figure, _backbone in SHAPLEY_FIGURES.items():

    rule:
        name:
            _figure
        input:
            values=f"{R}/shapley_ablation/cifar10-{_backbone}.h5",
        output:
            report(
                f"{R}/figures/{_figure}.png",
                caption=f"../report/figures/{_figure}.rst",
                category="4 Additional results (Appendix C)",
                subcategory="4.5 Ablation of the backbone",
            ),
            f"{R}/figures/{_figure}.pdf",
        log:
            f"{R}/logs/figures/{_figure}.log",
        conda:
            "../envs/modelpred.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            figure="shapley",
            title=(
                "CIFAR-10 images by Shapley value, last layer on a "
                + ("CIFAR-10-pretrained" if _backbone == "pretrained" else "randomly initialised")
                + " ResNet-18"
            ),
            rows=IMAGES["shapley_ablation"]["classes"],
            per_side=IMAGES["shapley_ablation"]["per_side"],
        script:
            "../scripts/image_figure.py"
