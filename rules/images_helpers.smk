# Input helpers and targets of the images stage, kept apart from its rules.


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
