"""FER backbones (registry ``BACKBONES``): one module per architecture; importing this package imports them all.

Builder contract: ``BACKBONES.build(name, num_classes=7, in_channels=1,
input_size=48, pretrained=False, **kw)`` returns an ``nn.Module`` that takes
float N x in_channels x S x S in [0, 1] and returns logits N x num_classes.
The model owns its input normalisation (first op), and repeats a single
grayscale channel to 3 where the architecture expects RGB.

Every backbone is also a :class:`~.common.StagedBackbone`: ``stage_names``
lists its stages (block groups at the architecture's natural boundaries, said
in each model's docstring), ``stage_features(x)`` returns their output maps
(differentiable, same weights as ``forward``) and ``forward_stages(x)`` returns
``(stage maps, logits)`` from one pass with the logits of ``forward`` bit for
bit.  A frozen backbone supervises an enhancer through them ([ll-fer] eq. 12,
``llfer.enhance.joint_loss``).

Adding a backbone is adding one module here with one ``@BACKBONES.register(...)``;
no list to edit (a module that fails to import raises ``MemberImportError`` naming it).
"""

from ..registry import import_members

import_members(__name__)
