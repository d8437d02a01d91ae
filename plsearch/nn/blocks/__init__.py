"""Built-in blocks and up units. Importing this package registers them (see ``plsearch.config.registry``)."""

from plsearch.nn.blocks.base import Block, FusedConv, conv_nd, conv_transpose_nd, fold_conv_bn, norm_nd
from plsearch.nn.blocks.conv import ConvBNReLU, PLConv
from plsearch.nn.blocks.residual import ResidualUnit
from plsearch.nn.blocks.up import Head, UpConvT2Half, UpConvT3, UpUnit

__all__ = [
    "Block",
    "PLConv",
    "ConvBNReLU",
    "ResidualUnit",
    "UpUnit",
    "UpConvT3",
    "UpConvT2Half",
    "Head",
    "FusedConv",
    "fold_conv_bn",
    "conv_nd",
    "conv_transpose_nd",
    "norm_nd",
]
