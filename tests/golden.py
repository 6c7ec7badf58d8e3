"""Golden counts the tests hold the code to (measured with torch; pycls's golden values agree
for R-56 and V-56). Kept here, not in the package: a test must not read its expected value
from the code under test."""

# Golden counts (batch 1; 32x32 CIFAR, 224x224 ImageNet): params and conv+fc MACs.
# CIFAR: plain nets have the counts of option A.
CIFAR_COUNTS = {
    20: {"A": (269_722, 40_551_040), "B": (272_474, 40_813_184), "C": (283_962, 42_648_192)},
    32: {"A": (464_154, 68_862_592), "B": (466_906, 69_124_736), "C": (489_594, 72_532_608)},
    44: {"A": (658_586, 97_174_144), "B": (661_338, 97_436_288), "C": (695_226, 102_417_024)},
    56: {"A": (853_018, 125_485_696), "B": (855_770, 125_747_840),
         "C": (900_858, 132_301_440)},
    110: {"A": (1_727_962, 252_887_680), "B": (1_730_714, 253_149_824),
          "C": (1_826_202, 266_781_312)},
    1202: {"A": (19_421_274, 2_829_238_912), "B": (19_424_026, 2_829_501_056),
           "C": (20_538_714, 2_986_263_168)},
}
# torchvision's resnetD (= our resnetD-B with stride_in="3x3"): params, conv+fc MACs.
TORCHVISION_COUNTS = {
    18: (11_689_512, 1_814_073_344),
    34: (21_797_672, 3_663_761_408),
    50: (25_557_032, 4_089_184_256),
    101: (44_549_160, 7_801_405_440),
    152: (60_192_808, 11_513_626_624),
}
# Paper placement (stride in the first 1x1, "v1") conv+fc MACs; match Table 1's 3.8/7.6/11.3.
IMAGENET_V1_MACS = {50: 3_857_973_248, 101: 7_570_194_432, 152: 11_282_415_616}
IMAGENET_SHORTCUT_PARAMS = {
    18: {"A": 11_515_688, "B": 11_689_512, "C": 12_043_816},
    34: {"A": 21_623_848, "B": 21_797_672, "C": 22_716_840},
}
