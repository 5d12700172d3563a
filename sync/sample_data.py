"""Word lists for the sample county (:mod:`sync.sample`): names, titles, places, holidays.

Data only. Order matters: the generator draws from these lists by index, so reordering or
editing an entry changes the sample's rows (and the determinism tests' expectations only in
that the two loads still agree). Rare characters outside GB2312 are marked where they occur;
some titles are contrived on purpose to carry them.
"""

from __future__ import annotations

# The county of the sample: administrative division code 431121, ISIL prefix below.
COUNTY_CODE = "431121"
ISIL_PREFIX = f"CN-{COUNTY_CODE}-"

# (surname, weight): common surnames, weighted towards those frequent in Hunan.
SURNAMES: tuple[tuple[str, int], ...] = (
    ("李", 60), ("王", 55), ("刘", 55), ("陈", 50), ("张", 45), ("唐", 40), ("蒋", 35),
    ("邓", 30), ("周", 30), ("杨", 28), ("黄", 25), ("彭", 25), ("曾", 25), ("谭", 22),
    ("赵", 18), ("吴", 18), ("胡", 18), ("罗", 18), ("肖", 16), ("何", 15), ("徐", 12),
    ("孙", 10), ("朱", 10), ("马", 8), ("郭", 10), ("林", 10), ("高", 9), ("梁", 8),
    ("郑", 8), ("宋", 7), ("谢", 12), ("许", 7), ("邹", 10), ("蔡", 6), ("潘", 8),
    ("袁", 8), ("于", 5), ("董", 5), ("余", 7), ("苏", 5), ("叶", 6), ("吕", 5),
    ("魏", 5), ("田", 6), ("杜", 5), ("丁", 5), ("沈", 4), ("姜", 4), ("范", 5),
    ("江", 5), ("钟", 6), ("卢", 5), ("汪", 4), ("廖", 8), ("姚", 5), ("方", 4),
    ("邱", 5), ("夏", 5), ("贺", 7), ("雷", 5), ("龙", 6), ("段", 4), ("石", 5),
    ("熊", 5), ("秦", 4), ("蒙", 2), ("欧阳", 6), ("司马", 1), ("上官", 1), ("诸葛", 1),
)

# Characters of given names by generation and sex; two of them, or one, make a name.
GIVEN_ADULT_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆旭宁龙林阳建志文博晨"
GIVEN_ADULT_FEMALE = "芳娜敏静丽艳娟霞燕玲桂英秀兰萍红梅琳婷雪颖倩洁佳怡欣悦琪慧晓丹"
GIVEN_CHILD = "子梓轩涵浩宇欣怡一诺萱雨桐若汐沐宸奕辰可馨诗睿依墨思语嘉乐安然"
# Whole given names typical of people born in the 1940s-1960s.
GIVEN_ELDERLY: tuple[str, ...] = (
    "建国", "国强", "秀英", "桂兰", "淑珍", "玉兰", "德明", "志刚", "春生", "桂芳",
    "凤英", "金花", "学文", "永红", "卫东", "红梅", "秋菊", "福生", "国华", "玉梅",
    "满堂", "建华", "爱民", "冬梅",
)
# Outside GB2312 (GBK two-byte unless noted): 堃 喆 昇 玥 珺 赟 旻 祎 翀 璟;
# 䶮 is CJK Extension A; 𠀋 and 𡒄 are Extension B (four bytes in GB18030, a surrogate
# pair in UTF-16).
GIVEN_RARE = "堃喆昇玥珺赟旻祎翀璟䶮𠀋𡒄"

# Readers registered under a Latin-script name: foreign residents, pinyin-only records.
LATIN_NAMES: tuple[str, ...] = (
    "Li Wei", "Zhang Min", "Wang Fang", "Chen Jie", "Liu Yang", "Ouyang Lan",
    "Tang Xiaoming", "Emily Wang", "David Chen", "Sarah Liu", "Michael Zhou", "Anna Tang",
    "Thomas Müller", "Nguyen Van An",
)

# Title categories: (category, loan type). The loan type of an item follows its title.
CATEGORIES: dict[str, str] = {
    "classic": "normal",
    "modern": "normal",
    "new": "new_book",
    "local": "normal",
    "reference": "reference",
    "agri": "normal",
    "tech": "normal",
    "children": "children",
    "english": "normal",
    "english_children": "children",
    "rare": "normal",
}

# (title, author, Chinese Library Classification class, category)
TITLES: tuple[tuple[str, str, str, str], ...] = (
    ("红楼梦", "曹雪芹", "I242.4", "classic"),
    ("三国演义", "罗贯中", "I242.4", "classic"),
    ("水浒传", "施耐庵", "I242.4", "classic"),
    ("西游记", "吴承恩", "I242.4", "classic"),
    ("儒林外史", "吴敬梓", "I242.4", "classic"),
    ("聊斋志异", "蒲松龄", "I242.1", "classic"),
    ("唐诗三百首", "蘅塘退士", "I222.742", "classic"),
    ("古文观止", "吴楚材", "I262", "classic"),
    ("论语译注", "杨伯峻", "B222.2", "classic"),
    ("呐喊", "鲁迅", "I210.6", "classic"),
    ("朝花夕拾", "鲁迅", "I210.4", "classic"),
    ("家", "巴金", "I246.5", "classic"),
    ("骆驼祥子", "老舍", "I246.5", "classic"),
    ("边城", "沈从文", "I246.5", "classic"),
    ("围城", "钱钟书", "I246.5", "classic"),
    ("子夜", "茅盾", "I246.5", "classic"),
    ("雷雨", "曹禺", "I234", "classic"),
    ("活着", "余华", "I247.57", "modern"),
    ("许三观卖血记", "余华", "I247.57", "modern"),
    ("平凡的世界", "路遥", "I247.57", "modern"),
    ("人生", "路遥", "I247.57", "modern"),
    ("白鹿原", "陈忠实", "I247.5", "modern"),
    ("尘埃落定", "阿来", "I247.5", "modern"),
    ("长恨歌", "王安忆", "I247.5", "modern"),
    ("芙蓉镇", "古华", "I247.5", "modern"),
    ("三体", "刘慈欣", "I247.55", "modern"),
    ("繁花", "金宇澄", "I247.5", "modern"),
    ("人世间", "梁晓声", "I247.5", "modern"),
    ("额尔古纳河右岸", "迟子建", "I247.5", "modern"),
    ("文化苦旅", "余秋雨", "I266", "modern"),
    ("我与地坛", "史铁生", "I266", "modern"),
    ("乡土中国", "费孝通", "C912.82", "modern"),
    ("万历十五年", "黄仁宇", "K248.07", "modern"),
    ("人类简史", "尤瓦尔·赫拉利", "K02", "modern"),
    ("百年孤独", "加西亚·马尔克斯", "I775.45", "modern"),
    ("追风筝的人", "卡勒德·胡赛尼", "I712.45", "modern"),
    ("解忧杂货店", "东野圭吾", "I313.45", "modern"),
    ("雪山大地", "杨志军", "I247.5", "new"),
    ("宝水", "乔叶", "I247.5", "new"),
    ("本巴", "刘亮程", "I247.5", "new"),
    ("千里江山图", "孙甘露", "I247.5", "new"),
    ("回响", "东西", "I247.5", "new"),
    ("长安的荔枝", "马伯庸", "I247.5", "new"),
    ("我在北京送快递", "胡安焉", "I251", "new"),
    ("湖湘文化读本", "本书编委会", "G127.64", "local"),
    ("湘江流域史话", "县地方志办公室", "K296.4", "local"),
    ("永州古村落", "县地方志办公室", "K928.5", "local"),
    ("浯溪碑林", "县文物管理所", "K877.4", "local"),
    ("祁剧艺术", "县文化馆", "J825.64", "local"),
    ("潇湘八景诗画", "县文化馆", "I222", "local"),
    ("湖南省志·地理志", "湖南省地方志编纂委员会", "K296.4", "reference"),
    ("县志（1989—2010）", "县地方志编纂委员会", "K296.44", "reference"),
    ("现代汉语词典（第7版）", "中国社会科学院语言研究所", "H164", "reference"),
    ("新华字典（第12版）", "中国社会科学院语言研究所", "H163", "reference"),
    ("湖南年鉴2025", "湖南年鉴社", "Z52", "reference"),
    ("水稻高产栽培技术", "县农业技术推广中心", "S511", "agri"),
    ("柑橘病虫害绿色防控", "县农业技术推广中心", "S436.66", "agri"),
    ("油茶丰产栽培技术", "县林业局", "S794.4", "agri"),
    ("生猪健康养殖实用技术", "县畜牧水产事务中心", "S828", "agri"),
    ("稻田养鱼与稻虾共作", "县畜牧水产事务中心", "S964.2", "agri"),
    ("农村电商运营实务", "县商务局", "F724.6", "agri"),
    ("果树修剪图解", "县农业技术推广中心", "S660.5", "agri"),
    ("蔬菜大棚种植技术", "县农业技术推广中心", "S626", "agri"),
    ("中草药种植技术", "县农业技术推广中心", "S567", "agri"),
    ("农机使用与维修", "县农机事务中心", "S232.8", "agri"),
    ("家庭养鸡", "县畜牧水产事务中心", "S831.4", "agri"),
    ("农村常见病防治手册", "县卫生健康局", "R4", "agri"),
    ("乡村旅游经营指南", "县文化旅游广电体育局", "F592.3", "agri"),
    ("Python编程：从入门到实践", "埃里克·马瑟斯", "TP311.561", "tech"),
    ("老年人智能手机使用一本通", "本书编写组", "TN929.53", "tech"),
    ("家电维修入门", "本书编写组", "TM925.07", "tech"),
    ("Excel高效办公", "本书编写组", "TP391.13", "tech"),
    ("电工基础", "本书编写组", "TM1", "tech"),
    ("草房子", "曹文轩", "I287.45", "children"),
    ("青铜葵花", "曹文轩", "I287.45", "children"),
    ("小王子", "圣埃克苏佩里", "I565.88", "children"),
    ("安徒生童话", "安徒生", "I534.88", "children"),
    ("格林童话", "格林兄弟", "I516.88", "children"),
    ("十万个为什么", "本书编委会", "Z228.1", "children"),
    ("没头脑和不高兴", "任溶溶", "I287.8", "children"),
    ("小猪唏哩呼噜", "孙幼军", "I287.45", "children"),
    ("大头儿子和小头爸爸", "郑春华", "I287.45", "children"),
    ("皮皮鲁传", "郑渊洁", "I287.45", "children"),
    ("米小圈上学记", "北猫", "I287.45", "children"),
    ("猜猜我有多爱你", "山姆·麦克布雷尼", "I561.85", "children"),
    ("夏洛的网", "E. B. 怀特", "I712.85", "children"),
    ("Pride and Prejudice", "Jane Austen", "I561.44", "english"),
    ("The Old Man and the Sea", "Ernest Hemingway", "I712.45", "english"),
    ("Animal Farm", "George Orwell", "I561.45", "english"),
    ("English Grammar in Use", "Raymond Murphy", "H314", "english"),
    ("The Three-Body Problem", "Liu Cixin; Ken Liu (tr.)", "I247.55", "english"),
    ("Harry Potter and the Philosopher's Stone", "J. K. Rowling", "I561.84", "english_children"),
    ("Charlotte's Web", "E. B. White", "I712.84", "english_children"),
    ("Le Petit Prince", "Antoine de Saint-Exupéry", "I565.88", "english_children"),
    # Contrived or rare titles that carry characters outside GB2312.
    ("南汉高祖刘䶮", "县历史学会", "K243.07", "rare"),
    ("昇平署戏曲档案选编", "本书编委会", "J809.2", "rare"),
    ("堃舆图说", "本书编委会", "K928.6", "rare"),
    ("𠀋字考", "县方言研究会", "H124", "rare"),
    ("𡒄山方言词汇", "县方言研究会", "H174", "rare"),
)

# Weight of each category in the collection of each kind of service point.
CATEGORY_WEIGHTS: dict[str, dict[str, int]] = {
    "central": {"classic": 14, "modern": 22, "new": 6, "local": 6, "reference": 6,
                "agri": 8, "tech": 8, "children": 18, "english": 5, "english_children": 3,
                "rare": 4},
    "24h-space": {"classic": 14, "modern": 30, "new": 10, "local": 2, "reference": 1,
                  "agri": 2, "tech": 6, "children": 28, "english": 4, "english_children": 3,
                  "rare": 1},
    "branch": {"classic": 12, "modern": 20, "new": 4, "local": 6, "reference": 3,
               "agri": 22, "tech": 6, "children": 24, "english": 1, "english_children": 1,
               "rare": 1},
    "village": {"classic": 8, "modern": 12, "new": 2, "local": 4, "reference": 1,
                "agri": 38, "tech": 5, "children": 30, "english": 0, "english_children": 0,
                "rare": 0},
    "van": {"classic": 8, "modern": 18, "new": 6, "local": 2, "reference": 0,
            "agri": 30, "tech": 6, "children": 30, "english": 0, "english_children": 0,
            "rare": 0},
}

# Extra 24-hour city reading spaces of the county sample (0002 is in every sample).
READING_SPACES: tuple[str, ...] = (
    "城西24小时城市书房", "滨江24小时城市书房", "高铁站24小时城市书房",
)

# Towns and townships: each gets a branch library (分馆) and village service points.
TOWNSHIPS: tuple[str, ...] = (
    "白水镇", "黎家坪镇", "文富市镇", "大忠桥镇", "观音滩镇", "潘市镇", "梅溪镇", "羊角塘镇",
    "肖家村镇", "八宝镇", "龚家坪镇", "下马渡镇", "七里桥镇", "金洞镇", "茅竹镇", "进宝塘镇",
    "三口塘镇", "大村甸镇", "凤凰乡", "晒北滩乡", "石鼓源乡", "长虹街道",
)

# Village names (invented); a village service point is the village's 农家书屋.
VILLAGES: tuple[str, ...] = (
    "枫树", "石桥", "桃园", "杉木", "新塘", "荷叶", "青山", "竹山", "龙泉", "白果", "柳塘",
    "大坪", "茶园", "长冲", "黄泥", "清水", "沙坪", "红旗", "金星", "高峰",
)

# Closed days. The 2026 dates follow the State Council's holiday notice; the 2027 ones are
# assumed (Spring Festival 2027 falls on 6 February) until the hub sends the real calendar.
SPRING_FESTIVAL_EVE = ("2026-02-16", "2026-02-17", "2026-02-18",
                       "2027-02-05", "2027-02-06", "2027-02-07")
PUBLIC_HOLIDAYS = (
    "2026-02-15", "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20",
    "2026-02-21", "2026-02-22", "2026-02-23",
    "2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04", "2026-10-05", "2026-10-06",
    "2026-10-07",
    "2027-02-05", "2027-02-06", "2027-02-07", "2027-02-08", "2027-02-09", "2027-02-10",
    "2027-02-11",
    "2027-10-01", "2027-10-02", "2027-10-03", "2027-10-04", "2027-10-05", "2027-10-06",
    "2027-10-07",
)

# (reason, note) of patron blocks the hub sends down.
BLOCK_REASONS: tuple[tuple[str, str], ...] = (
    ("overdue", "超期图书逾期未还"),
    ("lost_item", "遗失图书未赔偿"),
    ("damaged_item", "损坏图书待处理"),
    ("staff", "馆员手工冻结：请到总馆服务台办理"),
)

# (patron type, loan type) -> (loan days, max renewals, max loans). The '*' rows are the
# wildcards of sync.cache_views.loan_rule: no "<type>/*" rows on purpose, because such a
# row would outrank "*/reference" and make reference books lendable.
LOAN_RULES: tuple[tuple[str, str, int, int, int], ...] = (
    ("adult", "normal", 30, 1, 8),
    ("adult", "new_book", 14, 0, 8),
    ("adult", "children", 30, 1, 8),
    ("student", "normal", 30, 1, 8),
    ("student", "new_book", 14, 0, 8),
    ("student", "children", 30, 1, 8),
    ("child", "normal", 21, 1, 5),
    ("child", "new_book", 14, 0, 5),
    ("child", "children", 21, 2, 5),
    ("elderly", "normal", 45, 2, 10),
    ("elderly", "new_book", 21, 0, 10),
    ("elderly", "children", 45, 2, 10),
    ("*", "reference", 0, 0, 0),
    ("*", "*", 30, 1, 5),
)

PATRON_TYPES: tuple[str, ...] = ("adult", "student", "child", "elderly")
PATRON_TYPE_WEIGHTS: tuple[int, ...] = (66, 14, 11, 9)

# The stops of the sample county's book van (a name outside GB2312 among them on purpose).
VAN_STOPS = ("石门村", "柳树湾", "白沙镇", "𠀀山村")

# Staff of the sample county, for the demo's desk: (card, name, role, PIN hash). The
# hashes are fixed so the sample stays byte-identical; the PINs are 2468 (9900000001) and
# 1357 (9900000002), documented for the demo and never used for real staff.
DEMO_STAFF_PINS = {"9900000001": "2468", "9900000002": "1357"}
STAFF: tuple[tuple[str, str, str, str], ...] = (
    ("9900000001", "流动图书车馆员王芳", "van",
     "scrypt$14$8$1$YNcnHLMX8vGjlM0OLulugw==$6TImPV/0buYEOZuP2d17Rk9ycDEZ7q52ftQDDMdqZKI="),
    ("9900000002", "总馆管理员赵强", "admin",
     "scrypt$14$8$1$Nyqa++pyy8GuX+Al8VYmcQ==$q+RNO3El8JpBxEDlAMX8zybITi0n0LfLfuEnePpUjsQ="),
)
